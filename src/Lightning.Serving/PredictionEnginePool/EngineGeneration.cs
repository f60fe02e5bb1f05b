using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Microsoft.ML;

namespace Lightning.Serving;

/// <summary>
/// One model's engines for one loaded version. Engines rented from a generation go back to it; each rented engine holds
/// a lease, so once the generation is retired (a newer version serves) and all its engines are back, its engines and its
/// model are disposed.
/// </summary>
internal sealed class EngineGeneration<TData, TPrediction> : ModelGeneration
    where TData : class
    where TPrediction : class, new()
{
    private readonly MLContext _context;
    private readonly ConcurrentQueue<PredictionEngine<TData, TPrediction>> _idle = new();
    private readonly ConditionalWeakTable<PredictionEngine<TData, TPrediction>, EngineLease<TData, TPrediction>> _owners;
    private readonly int _maxRetained;
    private int _idleCount;

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

    /// <summary>An engine for a lease already taken with <see cref="ModelGeneration.TryAcquire"/>; <see cref="Return"/> gives both back.</summary>
    public PredictionEngine<TData, TPrediction> Take()
    {
        if (_idle.TryDequeue(out var engine)) Interlocked.Decrement(ref _idleCount);
        else engine = CreateEngine();
        if (_owners.TryGetValue(engine, out var lease)) Volatile.Write(ref lease.Out, 1);
        return engine;
    }

    /// <summary>Takes an engine back; an engine returned twice is taken back once, so two callers never share it.</summary>
    public void Return(PredictionEngine<TData, TPrediction> engine)
    {
        if (!_owners.TryGetValue(engine, out var lease) || Interlocked.Exchange(ref lease.Out, 0) == 0) return;
        var keep = false;
        if (!IsRetired)
        {
            // Keep at most ProcessorCount * 2 idle engines, as ObjectPool does; the rest are disposed, not dropped.
            if (Interlocked.Increment(ref _idleCount) <= _maxRetained) keep = true;
            else Interlocked.Decrement(ref _idleCount);
        }
        if (keep) _idle.Enqueue(engine);
        else engine.Dispose();
        Release();
    }

    /// <summary>Idle engines serve no one once the generation is retired.</summary>
    protected override void OnRetired() => DrainIdle();

    protected override void DisposeResources()
    {
        // An engine returned while the generation was being retired may have gone into the queue after OnRetired.
        DrainIdle();
        if (!KeepModel) (Model as IDisposable)?.Dispose();
    }

    private void DrainIdle()
    {
        while (_idle.TryDequeue(out var engine)) engine.Dispose();
    }
}
