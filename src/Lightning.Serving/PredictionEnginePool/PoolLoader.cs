using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;
using Microsoft.ML;

namespace Lightning.Serving;

/// <summary>Which generation an engine belongs to and whether it is rented out now.</summary>
internal sealed class EngineLease<TData, TPrediction>(EngineGeneration<TData, TPrediction> generation)
    where TData : class
    where TPrediction : class, new()
{
    public EngineGeneration<TData, TPrediction> Generation { get; } = generation;

    /// <summary>1 while rented; a field so that returns can exchange it atomically.</summary>
    public int Out;
}

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

/// <summary>
/// The engines of one model name: builds a generation from the loader's model at start and after each reload token,
/// and routes every returned engine to the generation it was rented from.
/// </summary>
internal sealed class PoolLoader<TData, TPrediction> : IDisposable
    where TData : class
    where TPrediction : class, new()
{
    private readonly MLContext _context;
    private readonly ILogger _logger;
    private readonly string _modelName;
    private readonly string _source;
    private readonly int _maxRetained = Environment.ProcessorCount * 2;
    private readonly IDisposable _reloadRegistration;
    private readonly Lock _swapLock = new();
    private EngineGeneration<TData, TPrediction> _current;
    private int _version;
    private bool _disposed;

    public PoolLoader(string modelName, ModelLoader loader, MLContext context, ILogger logger,
        ConditionalWeakTable<PredictionEngine<TData, TPrediction>, EngineLease<TData, TPrediction>> owners)
    {
        _modelName = modelName;
        Loader = loader;
        _context = context;
        _logger = logger;
        Owners = owners;
        _source = loader is IModelSource s ? s.Source : loader.GetType().FullName ?? loader.GetType().Name;
        _current = Build(loader.GetModel());
        _reloadRegistration = ChangeToken.OnChange(loader.GetReloadToken, LoadPool);
    }

    public ModelLoader Loader { get; }

    public ConditionalWeakTable<PredictionEngine<TData, TPrediction>, EngineLease<TData, TPrediction>> Owners { get; }

    public EngineGeneration<TData, TPrediction> Current => Volatile.Read(ref _current);

    public PredictionEngine<TData, TPrediction> Rent()
    {
        // A retired generation refuses; the swap has already published the new one, so the loop ends at once.
        while (true)
        {
            if (Volatile.Read(ref _disposed)) throw new ObjectDisposedException(nameof(PredictionEnginePool<TData, TPrediction>));
            var engine = Current.TryRent();
            if (engine is not null) return engine;
        }
    }

    private EngineGeneration<TData, TPrediction> Build(ITransformer model)
    {
        var version = Interlocked.Increment(ref _version);
        var (device, _) = ExecutionProviderChoice.Resolve(_context);
        var info = new ModelInfo(_modelName, version, _source, DateTimeOffset.UtcNow, _context.GpuDeviceId, _context.FallbackToCpu, device);
        var generation = new EngineGeneration<TData, TPrediction>(_context, model, info, _maxRetained, Owners);
        // Build one engine now: a model that does not fit the types fails here, not in the first request.
        generation.Return(generation.TryRent()!);
        PredictionEnginePoolLog.ModelServing(_logger, _modelName, version, _source, device);
        return generation;
    }

    private void LoadPool()
    {
        lock (_swapLock)
        {
            if (_disposed) return;
            var old = Current;
            EngineGeneration<TData, TPrediction> next;
            try
            {
                next = Build(Loader.GetModel());
            }
            catch (Exception e)
            {
                Interlocked.Decrement(ref _version);
                PredictionEnginePoolLog.ModelSwapError(_logger, _modelName, _source, old.Info.Version, e);
                return;
            }
            old.KeepModel = ReferenceEquals(old.Model, next.Model);
            Volatile.Write(ref _current, next);
            old.Retire();
        }
    }

    public void Dispose()
    {
        lock (_swapLock)
        {
            if (_disposed) return;
            _disposed = true;
            _reloadRegistration.Dispose();
            (Loader as IDisposable)?.Dispose();
            Current.Retire();
        }
    }
}
