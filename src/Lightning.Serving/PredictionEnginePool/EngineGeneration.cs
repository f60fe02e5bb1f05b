using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Microsoft.ML;

namespace Lightning.Serving;

/// <summary>
/// One model's engines for one loaded version. Engines rented from a generation go back to it; once it is retired
/// (a newer version serves) and all its engines are back, its engines and its model are disposed.
/// </summary>
internal sealed class EngineGeneration<TData, TPrediction> : IDisposable
    where TData : class
    where TPrediction : class, new()
{
    private readonly MLContext _context;
    private readonly ConcurrentQueue<PredictionEngine<TData, TPrediction>> _idle = new();
    private readonly ConditionalWeakTable<PredictionEngine<TData, TPrediction>, EngineLease<TData, TPrediction>> _owners;
    private readonly int _maxRetained;
    private int _idleCount;
    private int _rented;
    private int _retired;
    private int _disposed;

    public EngineGeneration(MLContext context, ITransformer model, ModelInfo info, int maxRetained,
        ConditionalWeakTable<PredictionEngine<TData, TPrediction>, EngineLease<TData, TPrediction>> owners)
    {
        _context = context;
        Model = model;
        Info = info;
        _maxRetained = maxRetained;
        _owners = owners;
    }

    public ITransformer Model { get; }

    public ModelInfo Info { get; }

    /// <summary>True once the model and its engines are disposed.</summary>
    public bool IsDisposed => Volatile.Read(ref _disposed) == 1;

    /// <summary>Set by the pool when the newer generation would share this model, so retiring must not dispose it.</summary>
    public bool KeepModel { get; set; }

    /// <summary>Creates an engine; proves at swap time that the model fits <typeparamref name="TData"/>/<typeparamref name="TPrediction"/>.</summary>
    public PredictionEngine<TData, TPrediction> CreateEngine()
    {
        // The engines share the model, which the generation owns and disposes once, after the last engine is back.
        var engine = _context.Model.CreatePredictionEngine<TData, TPrediction>(Model, new PredictionEngineOptions { OwnsTransformer = false });
        _owners.AddOrUpdate(engine, new EngineLease<TData, TPrediction>(this));
        return engine;
    }

    /// <summary>An engine of this generation, or null when it is retired and the caller must use the current one.</summary>
    public PredictionEngine<TData, TPrediction>? TryRent()
    {
        // Count the rental before reading the retired flag; Retire sets the flag before reading the count, so one of
        // the two always sees the other and the model is never disposed under a rented engine.
        Interlocked.Increment(ref _rented);
        if (Volatile.Read(ref _retired) == 1)
        {
            Release();
            return null;
        }
        if (_idle.TryDequeue(out var engine))
        {
            Interlocked.Decrement(ref _idleCount);
            MarkRented(engine);
            return engine;
        }
        try
        {
            engine = CreateEngine();
            MarkRented(engine);
            return engine;
        }
        catch
        {
            Release();
            throw;
        }
    }

    private void MarkRented(PredictionEngine<TData, TPrediction> engine)
    {
        if (_owners.TryGetValue(engine, out var lease)) Volatile.Write(ref lease.Out, 1);
    }

    /// <summary>Takes an engine back; an engine returned twice is taken back once, so two callers never share it.</summary>
    public void Return(PredictionEngine<TData, TPrediction> engine)
    {
        if (!_owners.TryGetValue(engine, out var lease) || Interlocked.Exchange(ref lease.Out, 0) == 0) return;
        var keep = false;
        if (Volatile.Read(ref _retired) == 0)
        {
            // Keep at most ProcessorCount * 2 idle engines, as ObjectPool does; the rest are disposed, not dropped.
            if (Interlocked.Increment(ref _idleCount) <= _maxRetained) keep = true;
            else Interlocked.Decrement(ref _idleCount);
        }
        if (keep) _idle.Enqueue(engine);
        else engine.Dispose();
        Release();
    }

    /// <summary>Stops renting from this generation; it is disposed as soon as no engine of it is out.</summary>
    public void Retire()
    {
        Interlocked.Exchange(ref _retired, 1);
        DrainIdle();
        if (Interlocked.CompareExchange(ref _rented, 0, 0) == 0) DisposeCore();
    }

    private void Release()
    {
        if (Interlocked.Decrement(ref _rented) == 0 && Volatile.Read(ref _retired) == 1) DisposeCore();
    }

    private void DrainIdle()
    {
        while (_idle.TryDequeue(out var engine)) engine.Dispose();
    }

    private void DisposeCore()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        DrainIdle();
        if (!KeepModel) (Model as IDisposable)?.Dispose();
    }

    public void Dispose() => Retire();
}
