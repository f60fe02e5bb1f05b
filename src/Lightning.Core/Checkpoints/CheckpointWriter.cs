namespace Lightning.Checkpoints;

/// <summary>
/// Writes checkpoints off the training thread, one after another in the order asked (Lightning's AsyncCheckpointIO):
/// the step loop only pays for capturing the state in memory. Deletions go through the same queue, so a file is never
/// deleted before it is written, and <see cref="Flush"/> waits for everything (the trainer flushes when a stage ends).
/// </summary>
internal sealed class CheckpointWriter
{
    private readonly object _gate = new();
    private readonly HashSet<string> _pending = new(StringComparer.Ordinal);
    private Task _tail = Task.CompletedTask;
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
        lock (_gate)
            if (_pending.Contains(Path.GetFullPath(path))) return true;
        return File.Exists(path);
    }

    /// <summary>Waits for every queued write and deletion; rethrows the first failure.</summary>
    public void Flush()
    {
        Task tail;
        lock (_gate) tail = _tail;
        tail.Wait();
        ThrowIfFailed();
    }

    private void Enqueue(string? path, Action job)
    {
        ThrowIfFailed();
        lock (_gate)
        {
            if (path is not null) _pending.Add(path);
            _tail = _tail.ContinueWith(_ =>
            {
                try { job(); }
                catch (Exception e) { lock (_gate) _failure ??= e; }
                finally
                {
                    if (path is not null)
                        lock (_gate) _pending.Remove(path);
                }
            }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default);
        }
    }

    private void ThrowIfFailed()
    {
        Exception? failure;
        lock (_gate)
        {
            failure = _failure;
            _failure = null;
        }
        if (failure is not null) throw new IOException($"Writing a checkpoint failed: {failure.Message}", failure);
    }
}
