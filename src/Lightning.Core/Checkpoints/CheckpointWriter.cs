using Lightning.IO;

namespace Lightning.Checkpoints;

/// <summary>
/// Writes checkpoints off the training thread, one after another in the order asked (Lightning's AsyncCheckpointIO):
/// the step loop only pays for capturing the state in memory. Deletions go through the same queue, so a file is never
/// deleted before it is written, and <see cref="Flush"/> waits for everything (the trainer flushes when a stage ends).
/// </summary>
/// <remarks>
/// <para>
/// A job waits <see cref="Delay"/> before it runs, so a write that a later job makes pointless is dropped unwritten: the
/// file is deleted (top-k moved on) or written again (<c>last.ckpt</c>). With epochs shorter than the delay, the default
/// checkpoint-every-epoch then writes about one file a second instead of one an epoch; the files on disk lag the saves
/// by about the delay at most, and what they are when the stage ends is unchanged. At most <see cref="MaxHeldWrites"/>
/// captured checkpoints of a trainer wait like this; more are written at once, so frequent saves that are all kept cannot pile up
/// a second's worth of model copies in memory.
/// </para>
/// <para>
/// Every trainer's jobs go to one long-lived thread, which sleeps until the first job is due; each trainer's jobs keep
/// their order, and one trainer's flush or held writes never hurry another's. Thread-pool workers spin
/// (sched_yield) for a while after each job, which took a core from training; and waking a sleeping thread costs the
/// caller (about 65 µs at an epoch end on a 2-vCPU VM), so only a job that finds no other job queued wakes the writer.
/// </para>
/// <para>
/// <see cref="Exists"/> answers from a listing of the folder taken at its first question, kept up to date with this
/// writer's own writes and deletions, because a system call at an epoch end cost about 40 µs there. Files that others
/// add to or remove from a checkpoint folder are seen again after the next <see cref="Flush"/> (the end of a stage).
/// </para>
/// </remarks>
internal sealed class CheckpointWriter
{
    /// <summary>How long a job waits for a later one that makes it pointless.</summary>
    internal static readonly TimeSpan Delay = TimeSpan.FromSeconds(1);

    /// <summary>How many queued writes (each holding a captured checkpoint) of one trainer may wait for the delay.</summary>
    internal const int MaxHeldWrites = 8;

    private static readonly object Gate = new();
    private static readonly List<CheckpointWriter> Busy = [];
    private static Thread? _thread;
    private static bool _asleep;

    // Linux file names are case-sensitive; the usual Windows and macOS file systems are not.
    private static readonly StringComparer FileNames = OperatingSystem.IsLinux() ? StringComparer.Ordinal : StringComparer.OrdinalIgnoreCase;

    private readonly TimeProvider _time;
    private readonly List<Job> _jobs = [];
    private readonly Dictionary<string, HashSet<string>> _folders = new(FileNames);
    private readonly HashSet<string> _swept = new(FileNames);
    private Job? _running;
    private bool _flushing;
    private Exception? _failure;

    /// <summary>A writer on the system clock.</summary>
    public CheckpointWriter() : this(TimeProvider.System) { }

    /// <summary>A writer whose delay runs on <paramref name="time"/> (tests step a manual clock and call <see cref="Wake"/>).</summary>
    internal CheckpointWriter(TimeProvider time) => _time = time;

    private DateTime Now => _time.GetUtcNow().UtcDateTime;

    /// <summary>True when no job of this writer is queued or running (each finished job is already recorded).</summary>
    internal bool Idle
    {
        get
        {
            lock (Gate) return !Pending;
        }
    }

    /// <summary>Makes the writer thread look at the clocks again (after a test moved its manual clock).</summary>
    internal static void Wake()
    {
        lock (Gate) Monitor.PulseAll(Gate);
    }

    /// <summary>Queues writing a file with <paramref name="write"/>; <paramref name="discard"/> runs instead if the write is dropped.</summary>
    public void Write(string path, Action<string> write, Action discard)
    {
        var fullPath = Path.GetFullPath(path);
        Enqueue(fullPath, () =>
        {
            Sweep(fullPath);
            write(fullPath);
        }, discard);
    }

    /// <summary>Writes a file now, on the calling thread; the caller flushes queued jobs first when their order matters.</summary>
    public void WriteNow(string path, Action<string> write)
    {
        var fullPath = Path.GetFullPath(path);
        Sweep(fullPath);
        write(fullPath);
        lock (Gate) Record(fullPath, written: true);
    }

    /// <summary>
    /// The first write into a folder removes the temporary files that a killed earlier run left there (a process killed
    /// mid-write cannot remove its own).
    /// </summary>
    private void Sweep(string path)
    {
        var folder = Path.GetDirectoryName(path)!;
        lock (Gate)
            if (!_swept.Add(folder)) return;
        DurableFile.RemoveStaleTemps(folder);
    }

    public void Delete(string path)
    {
        var fullPath = Path.GetFullPath(path);
        Enqueue(fullPath, () => DeleteIfPresent(fullPath), discard: null);
    }

    /// <summary>True when the file exists or is about to be written, and is not about to be deleted.</summary>
    public bool Exists(string path)
    {
        var fullPath = Path.GetFullPath(path);
        lock (Gate)
        {
            // The last job on the file decides: a write (it will exist) or a deletion (it won't).
            var last = _jobs.FindLast(job => job.Path == fullPath) ?? (_running?.Path == fullPath ? _running : null);
            if (last is not null) return last.Discard is not null;
            return FilesIn(Path.GetDirectoryName(fullPath)!).Contains(fullPath);
        }
    }

    /// <summary>The files this writer knows to be in <paramref name="folder"/>: listed once, then updated by its own jobs.</summary>
    private HashSet<string> FilesIn(string folder)
    {
        if (!_folders.TryGetValue(folder, out var files))
        {
            // Listed under the lock, so no job of this writer can finish in between and go unrecorded.
            files = new HashSet<string>(Directory.Exists(folder) ? Directory.EnumerateFiles(folder) : [], FileNames);
            _folders[folder] = files;
        }
        return files;
    }

    /// <summary>Runs every queued write and deletion now and waits for them; rethrows the first failure.</summary>
    public void Flush()
    {
        lock (Gate)
        {
            if (Pending)
            {
                _flushing = true;
                Monitor.PulseAll(Gate);
                while (Pending) Monitor.Wait(Gate);
                _flushing = false;
            }
            _folders.Clear();
        }
        ThrowIfFailed();
    }

    private bool Pending => _jobs.Count > 0 || _running is not null;

    private bool TooManyHeld => _jobs.Count(job => job.Discard is not null) > MaxHeldWrites;

    /// <summary>The first job may run: it is due, or the stage waits for it, or too many captures are held.</summary>
    private bool Ready(DateTime now) => _flushing || TooManyHeld || _jobs[0].Due <= now;

    private void Enqueue(string path, Action run, Action? discard)
    {
        ThrowIfFailed();
        lock (Gate)
        {
            // A job that replaces a queued write takes that write's place and due time: saving files more often than the
            // delay (last.ckpt, top-k files every few steps) must not postpone them forever, or a crash would find
            // nothing on disk. Only jobs on other files lie between the two, so no file's own jobs change order.
            var dropped = DropUnwrittenWrite(path);
            if (dropped is { } place) _jobs.Insert(place.Index, new Job(path, run, discard, place.Due));
            else _jobs.Add(new Job(path, run, discard, Now + Delay));
            if (!Busy.Contains(this)) Busy.Add(this);
            _thread ??= StartThread();
            if (_asleep || TooManyHeld) Monitor.PulseAll(Gate);
        }
    }

    /// <summary>A queued write of a file that is now deleted or written again is pointless: give its state back instead; returns its place and due time.</summary>
    private (int Index, DateTime Due)? DropUnwrittenWrite(string path)
    {
        var index = _jobs.FindIndex(job => job.Discard is not null && job.Path == path);
        if (index < 0) return null;
        var dropped = _jobs[index];
        _jobs.RemoveAt(index);
        dropped.Discard!();
        return (index, dropped.Due);
    }

    /// <summary>
    /// A dropped write leaves nothing to delete, often not even its folder (where File.Delete would throw). A listed folder
    /// answers without a system call.
    /// </summary>
    private void DeleteIfPresent(string path)
    {
        lock (Gate)
            if (_folders.TryGetValue(Path.GetDirectoryName(path)!, out var files) && !files.Contains(path)) return;
        if (File.Exists(path)) File.Delete(path);
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
            CheckpointWriter owner;
            Job next;
            lock (Gate)
            {
                while (true)
                {
                    Busy.RemoveAll(writer => writer._jobs.Count == 0);
                    if (Busy.Count == 0)
                    {
                        _asleep = true;
                        Monitor.Wait(Gate);
                        _asleep = false;
                        continue;
                    }
                    var ready = Busy.Find(writer => writer.Ready(writer.Now));
                    if (ready is not null)
                    {
                        owner = ready;
                        break;
                    }
                    // Each clock is read again here and may have passed a due time since Ready: never a negative wait.
                    var wait = Busy.Min(writer => writer._jobs[0].Due - writer.Now);
                    Monitor.Wait(Gate, wait > TimeSpan.Zero ? wait : TimeSpan.Zero);
                }
                next = owner._jobs[0];
                owner._jobs.RemoveAt(0);
                owner._running = next;
            }
            Exception? failure = null;
            try { next.Run(); }
            catch (Exception e) { failure = e; }
            lock (Gate)
            {
                if (failure is not null) owner._failure ??= failure;
                else owner.Record(next);
                owner._running = null;
                // Flush waits on the same monitor; wake it only when this trainer's queue has drained.
                if (!owner.Pending) Monitor.PulseAll(Gate);
            }
        }
    }

    /// <summary>Keeps a listed folder in step with a job that succeeded.</summary>
    private void Record(Job job) => Record(job.Path, written: job.Discard is not null);

    private void Record(string path, bool written)
    {
        if (!_folders.TryGetValue(Path.GetDirectoryName(path)!, out var files)) return;
        if (written) files.Add(path);
        else files.Remove(path);
    }

    private void ThrowIfFailed()
    {
        Exception? failure;
        lock (Gate)
        {
            failure = _failure;
            _failure = null;
        }
        if (failure is not null) throw new IOException($"Writing a checkpoint failed: {failure.Message}", failure);
    }

    /// <summary>A queued write (with <see cref="Discard"/>) or deletion (without) of <see cref="Path"/>.</summary>
    private sealed record Job(string Path, Action Run, Action? Discard, DateTime Due);
}
