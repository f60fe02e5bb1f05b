namespace Lightning.Checkpoints;

/// <summary>
/// Writes checkpoints off the training thread, one after another in the order asked (Lightning's AsyncCheckpointIO):
/// the step loop only pays for capturing the state in memory. Deletions go through the same queue, so a file is never
/// deleted before it is written, and <see cref="Flush"/> waits for everything (the trainer flushes when a stage ends).
/// </summary>
/// <remarks>
/// Every trainer's jobs go to one long-lived thread that sleeps on a monitor between them. Thread-pool workers spin
/// (sched_yield) for a while after each job; with a checkpoint per short epoch that spinning took a core from training.
/// </remarks>
internal sealed class CheckpointWriter
{
    private static readonly Queue<(CheckpointWriter Owner, string? Path, Action Job)> Jobs = new();
    private static Thread? _thread;

    private readonly HashSet<string> _pending = new(StringComparer.Ordinal);
    private int _queued;
    private Exception? _failure;

    public void Write(string path, Action<string> write)
    {
        var fullPath = Path.GetFullPath(path);
        Enqueue(fullPath, () => write(fullPath));
    }

    public void Delete(string path) => Enqueue(null, () => File.Delete(path));

    /// <summary>True when the file exists or is about to be written.</summary>
    public bool Exists(string path)
    {
        lock (Jobs)
            if (_pending.Contains(Path.GetFullPath(path))) return true;
        return File.Exists(path);
    }

    /// <summary>Waits for every queued write and deletion; rethrows the first failure.</summary>
    public void Flush()
    {
        lock (Jobs)
            while (_queued > 0) Monitor.Wait(Jobs);
        ThrowIfFailed();
    }

    private void Enqueue(string? path, Action job)
    {
        ThrowIfFailed();
        lock (Jobs)
        {
            if (path is not null) _pending.Add(path);
            _queued++;
            Jobs.Enqueue((this, path, job));
            _thread ??= StartThread();
            Monitor.PulseAll(Jobs);
        }
    }

    private static Thread StartThread()
    {
        var thread = new Thread(WriteForever) { IsBackground = true, Name = "Lightning checkpoint writer" };
        thread.Start();
        return thread;
    }

    private static void WriteForever()
    {
        while (true)
        {
            (CheckpointWriter Owner, string? Path, Action Job) next;
            lock (Jobs)
            {
                while (Jobs.Count == 0) Monitor.Wait(Jobs);
                next = Jobs.Dequeue();
            }
            Exception? failure = null;
            try { next.Job(); }
            catch (Exception e) { failure = e; }
            lock (Jobs)
            {
                var owner = next.Owner;
                if (failure is not null) owner._failure ??= failure;
                if (next.Path is not null) owner._pending.Remove(next.Path);
                // Flush waits on the same monitor; wake it only when this trainer's queue has drained.
                if (--owner._queued == 0) Monitor.PulseAll(Jobs);
            }
        }
    }

    private void ThrowIfFailed()
    {
        Exception? failure;
        lock (Jobs)
        {
            failure = _failure;
            _failure = null;
        }
        if (failure is not null) throw new IOException($"Writing a checkpoint failed: {failure.Message}", failure);
    }
}
