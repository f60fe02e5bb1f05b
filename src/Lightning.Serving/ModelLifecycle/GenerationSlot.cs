namespace Lightning.Serving;

/// <summary>
/// The generation that serves now. <see cref="Replace"/> publishes a newer one and retires the old, which is disposed
/// once its last lease is back; <see cref="Close"/> retires the current one for good.
/// </summary>
/// <typeparam name="TGeneration">The generation type.</typeparam>
internal sealed class GenerationSlot<TGeneration>
    where TGeneration : ModelGeneration
{
    private readonly Lock _lock = new();
    private TGeneration? _current;
    private volatile bool _closed;

    /// <summary>The generation serving now; null before the first <see cref="Replace"/> and after <see cref="Close"/>.</summary>
    public TGeneration? Current => Volatile.Read(ref _current);

    /// <summary>A lease on the current generation (give it back with <see cref="ModelGeneration.Release"/>); null when there is none or the slot is closed.</summary>
    public TGeneration? Acquire()
    {
        // A retired generation refuses; Replace has already published the newer one, so the loop ends at once.
        while (!_closed && Current is { } generation)
        {
            if (generation.TryAcquire()) return generation;
            // Retired yet still current: retired by someone other than this slot, so nothing can be leased.
            if (ReferenceEquals(generation, Current)) return null;
        }
        return null;
    }

    /// <summary>Makes <paramref name="next"/> the current generation and retires the old one; once closed, retires <paramref name="next"/> instead.</summary>
    /// <returns>False when the slot is closed.</returns>
    public bool Replace(TGeneration next)
    {
        lock (_lock)
        {
            if (_closed)
            {
                next.Retire();
                return false;
            }
            var old = _current;
            Volatile.Write(ref _current, next);
            old?.Retire();
            return true;
        }
    }

    /// <summary>Retires the current generation and refuses every later one.</summary>
    public void Close()
    {
        lock (_lock)
        {
            _closed = true;
            Interlocked.Exchange(ref _current, null)?.Retire();
        }
    }
}
