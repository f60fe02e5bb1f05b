namespace Lightning.Serving;

/// <summary>
/// One loaded version of a model, leased to the work that uses it. It is retired when a newer version replaces it and
/// disposed once it is retired and its last lease is back, so no work loses its model halfway and no old model is kept.
/// The prediction engine pool and the v2 served models both retire their versions this way.
/// </summary>
internal abstract class ModelGeneration : IDisposable
{
    private int _leases;
    private int _retired;
    private int _disposed;

    /// <summary>True once a newer version serves (or the owner stopped): no new lease is given.</summary>
    public bool IsRetired => Volatile.Read(ref _retired) == 1;

    /// <summary>True once the resources are disposed.</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed) == 1;

    /// <summary>Takes a lease; false once retired, when the caller must use the current generation instead.</summary>
    public bool TryAcquire()
    {
        // Count the lease before reading the retired flag; Retire sets the flag before reading the count, so one of
        // the two always sees the other and the generation is never disposed under a lease.
        Interlocked.Increment(ref _leases);
        if (Volatile.Read(ref _retired) == 0) return true;
        Release();
        return false;
    }

    /// <summary>Gives back a lease taken with <see cref="TryAcquire"/>; the last one back disposes a retired generation.</summary>
    public void Release()
    {
        if (Interlocked.Decrement(ref _leases) == 0 && Volatile.Read(ref _retired) == 1) DisposeOnce();
    }

    /// <summary>Stops leasing; the generation is disposed at once when no lease is out, else when the last one is back.</summary>
    public void Retire()
    {
        if (Interlocked.Exchange(ref _retired, 1) == 1) return;
        OnRetired();
        if (Volatile.Read(ref _leases) == 0) DisposeOnce();
    }

    /// <summary>Retires the generation: it is disposed when its last lease is back.</summary>
    public void Dispose() => Retire();

    /// <summary>Runs once, when the generation is retired, leases or not: frees what no lease needs.</summary>
    protected virtual void OnRetired()
    {
    }

    /// <summary>Runs once, when the generation is retired and no lease is out.</summary>
    protected abstract void DisposeResources();

    private void DisposeOnce()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0) DisposeResources();
    }
}
