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
    private readonly GenerationSlot<EngineGeneration<TData, TPrediction>> _generations = new();
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
        _generations.Replace(Build(loader.GetModel()));
        _reloadRegistration = ChangeToken.OnChange(loader.GetReloadToken, LoadPool);
    }

    public ModelLoader Loader { get; }

    public ConditionalWeakTable<PredictionEngine<TData, TPrediction>, EngineLease<TData, TPrediction>> Owners { get; }

    public EngineGeneration<TData, TPrediction> Current => _generations.Current ?? throw Disposed();

    public PredictionEngine<TData, TPrediction> Rent()
    {
        var generation = _generations.Acquire() ?? throw Disposed();
        try
        {
            return generation.Take();
        }
        catch
        {
            generation.Release();
            throw;
        }
    }

    private static ObjectDisposedException Disposed() => new(nameof(PredictionEnginePool<TData, TPrediction>));

    private EngineGeneration<TData, TPrediction> Build(ITransformer model)
    {
        var version = Interlocked.Increment(ref _version);
        var (device, _) = ExecutionProviderChoice.Resolve(_context);
        var info = new ModelInfo(_modelName, version, _source, DateTimeOffset.UtcNow, _context.GpuDeviceId, _context.FallbackToCpu, device);
        var generation = new EngineGeneration<TData, TPrediction>(_context, model, info, _maxRetained, Owners);
        // Build one engine now: a model that does not fit the types fails here, not in the first request.
        generation.TryAcquire();
        try
        {
            generation.Return(generation.Take());
        }
        catch
        {
            // Nothing serves this generation: dispose it, and with it the model unless the serving generation has it too.
            generation.KeepModel = ReferenceEquals(model, _generations.Current?.Model);
            generation.Release();
            generation.Retire();
            throw;
        }
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
            _generations.Replace(next);
        }
    }

    public void Dispose()
    {
        lock (_swapLock)
        {
            if (_disposed) return;
            _disposed = true;
        }
        // Outside the lock: disposing the registration waits for a reload callback in progress, which takes the lock.
        _reloadRegistration.Dispose();
        (Loader as IDisposable)?.Dispose();
        _generations.Close();
    }
}
