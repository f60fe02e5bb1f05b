using System.Diagnostics;

namespace Lightning.Checkpoints;

/// <summary>
/// Writes checkpoints off the training thread, one after another in the order asked (Lightning's AsyncCheckpointIO):
/// the step loop only pays for capturing the state in memory. Deletions go through the same queue, so a file is never
/// deleted before it is written, and <see cref="Flush"/> waits for everything (the trainer flushes when a stage ends).
/// </summary>
/// <remarks>
/// Every trainer's jobs go to one long-lived thread. Thread-pool workers spin (sched_yield) for a while after each job;
/// with a checkpoint per short epoch that spinning took a core from training. Waking a sleeping thread is not free
/// either: on a 2-vCPU VM it cost the training thread about 65 µs at an epoch end. So while checkpoints keep coming the
/// writer looks for work every <see cref="PollInterval"/>, and only a writer idle for <see cref="Linger"/> sleeps until
/// the next job wakes it.
/// </remarks>
internal sealed class CheckpointWriter
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(5);
    private static readonly TimeSpan Linger = TimeSpan.FromSeconds(2);
    private static readonly Queue<(CheckpointWriter Owner, string? Path, Action Job)> Jobs = new();
    private static Thread? _thread;
    private static bool _asleep;

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
        {
            // The stage is waiting: don't let a polling writer take its time.
            if (_queued > 0) Monitor.PulseAll(Jobs);
            while (_queued > 0) Monitor.Wait(Jobs);
        }
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
            if (_asleep) Monitor.PulseAll(Jobs);
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
        long lastJob = Stopwatch.GetTimestamp();
        while (true)
        {
            (CheckpointWriter Owner, string? Path, Action Job) next;
            lock (Jobs)
            {
                while (Jobs.Count == 0)
                {
                    if (Stopwatch.GetElapsedTime(lastJob) < Linger)
                    {
                        Monitor.Wait(Jobs, PollInterval);
                        continue;
                    }
                    _asleep = true;
                    Monitor.Wait(Jobs);
                    _asleep = false;
                }
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
            lastJob = Stopwatch.GetTimestamp();
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
