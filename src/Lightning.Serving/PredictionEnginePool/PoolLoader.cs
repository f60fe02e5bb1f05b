using System.Runtime.CompilerServices;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;
using Microsoft.ML;

namespace Lightning.Serving;

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
