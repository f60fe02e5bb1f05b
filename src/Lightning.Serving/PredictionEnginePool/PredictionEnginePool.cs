using System.Runtime.CompilerServices;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.ML;

namespace Lightning.Serving;

/// <summary>
/// Thread-safe pools of <see cref="PredictionEngine{TSrc, TDst}"/> for a default model and any number of named models,
/// with hot reload. Register it with <c>services.AddPredictionEnginePool&lt;TData, TPrediction&gt;().FromFile(...)</c>.
/// </summary>
/// <remarks>
/// <para>An engine is not thread-safe: rent one, use it on one thread, return it (or call <c>Predict</c>, which does all three).</para>
/// <para>On reload the new model serves new rentals at once. An engine rented before the reload keeps scoring with the
/// model it came from and goes back to that model's pool; the old model and its engines are disposed once the last of
/// them is back. A reload that fails keeps the current model serving.</para>
/// </remarks>
/// <typeparam name="TData">The input type of the models.</typeparam>
/// <typeparam name="TPrediction">The output type of the models.</typeparam>
public class PredictionEnginePool<TData, TPrediction> : IDisposable
    where TData : class
    where TPrediction : class, new()
{
    internal const string NoDefaultModelMessage = "You need to configure a default, not named, model before you use this method.";

    // Static so that an engine goes back to the version it came from whichever pool instance it is handed to.
    private static readonly ConditionalWeakTable<PredictionEngine<TData, TPrediction>, EngineLease<TData, TPrediction>> s_owners = new();

    private readonly MLContext _context;
    private readonly IOptionsFactory<PredictionEnginePoolOptions<TData, TPrediction>> _optionsFactory;
    private readonly ILogger _logger;
    private readonly Dictionary<string, PoolLoader<TData, TPrediction>> _pools = new(StringComparer.Ordinal);
    private readonly Lock _poolsLock = new();
    private readonly PoolLoader<TData, TPrediction>? _defaultPool;
    private volatile bool _disposed;

    /// <summary>Creates the pool and loads the default model when one is configured; named models load on first use.</summary>
    /// <param name="serviceProvider">The services, for logging.</param>
    /// <param name="mlContextOptions">The shared <see cref="MLContext"/> and device choice.</param>
    /// <param name="predictionEngineOptions">The named options holding each model's <see cref="ModelLoader"/>.</param>
    public PredictionEnginePool(
        IServiceProvider serviceProvider,
        IOptions<MLOptions> mlContextOptions,
        IOptionsFactory<PredictionEnginePoolOptions<TData, TPrediction>> predictionEngineOptions)
    {
        ArgumentNullException.ThrowIfNull(serviceProvider);
        ArgumentNullException.ThrowIfNull(mlContextOptions);
        ArgumentNullException.ThrowIfNull(predictionEngineOptions);
        _context = mlContextOptions.Value.MLContext;
        _optionsFactory = predictionEngineOptions;
        _logger = serviceProvider.GetService<ILoggerFactory>()?.CreateLogger("Lightning.Serving.PredictionEnginePool") ?? NullLogger.Instance;

        var defaultOptions = _optionsFactory.Create(string.Empty);
        if (defaultOptions.ModelLoader is not null)
        {
            _defaultPool = new PoolLoader<TData, TPrediction>(string.Empty, defaultOptions.ModelLoader, _context, _logger, s_owners);
            _pools[string.Empty] = _defaultPool;
        }
    }

    /// <summary>The default model serving now.</summary>
    /// <exception cref="ArgumentException">No default model is configured.</exception>
    public ITransformer GetModel() => GetModel(string.Empty);

    /// <summary>The named model serving now, loading it on first use.</summary>
    /// <param name="modelName">The model name given to <c>FromFile</c>/<c>FromUri</c>; <c>""</c> for the default model.</param>
    public ITransformer GetModel(string modelName) => GetPool(modelName).Current.Model;

    /// <summary>Which version of the default model serves now, from where, and on which device.</summary>
    public ModelInfo GetModelInfo() => GetModelInfo(string.Empty);

    /// <summary>Which version of the named model serves now, from where, and on which device.</summary>
    /// <param name="modelName">The model name; <c>""</c> for the default model.</param>
    public ModelInfo GetModelInfo(string modelName) => GetPool(modelName).Current.Info;

    /// <summary>The generation serving the named model now (for tests and diagnostics).</summary>
    internal EngineGeneration<TData, TPrediction> GetGeneration(string modelName) => GetPool(modelName).Current;

    /// <summary>Rents an engine of the default model; give it back with <see cref="ReturnPredictionEngine(PredictionEngine{TData, TPrediction})"/>.</summary>
    public PredictionEngine<TData, TPrediction> GetPredictionEngine() => GetPredictionEngine(string.Empty);

    /// <summary>Rents an engine of the named model, loading the model on first use.</summary>
    /// <param name="modelName">The model name; <c>""</c> for the default model.</param>
    /// <exception cref="ArgumentException">The default model is asked for and none is configured.</exception>
    /// <exception cref="ArgumentNullException">No model of that name is configured (the type Microsoft.Extensions.ML throws).</exception>
    /// <exception cref="ObjectDisposedException">The pool is disposed.</exception>
    public PredictionEngine<TData, TPrediction> GetPredictionEngine(string modelName) => GetPool(modelName).Rent();

    /// <summary>Gives back an engine of the default model.</summary>
    /// <param name="engine">The engine to give back.</param>
    public void ReturnPredictionEngine(PredictionEngine<TData, TPrediction> engine) => ReturnPredictionEngine(string.Empty, engine);

    /// <summary>
    /// Gives back an engine. It goes to the model version it was rented from, whatever the name: after a reload it is
    /// disposed rather than mixed into the new model's pool. Engines this pool did not create, or returned after
    /// <see cref="Dispose()"/>, are disposed; an engine returned twice is taken back once.
    /// </summary>
    /// <param name="modelName">The model name the engine was rented for (kept for compatibility; the engine knows its own).</param>
    /// <param name="engine">The engine to give back.</param>
    public void ReturnPredictionEngine(string modelName, PredictionEngine<TData, TPrediction> engine)
    {
        ArgumentNullException.ThrowIfNull(engine);
        if (s_owners.TryGetValue(engine, out var lease)) lease.Generation.Return(engine);
        else engine.Dispose();
    }

    /// <summary>Stops watching and polling, and disposes every model and engine once it is back.</summary>
    public void Dispose()
    {
        Dispose(true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Disposes the pools, their loaders and their models.</summary>
    /// <param name="disposing">True when called from <see cref="Dispose()"/>.</param>
    protected virtual void Dispose(bool disposing)
    {
        if (!disposing) return;
        PoolLoader<TData, TPrediction>[] pools;
        lock (_poolsLock)
        {
            if (_disposed) return;
            _disposed = true;
            pools = [.. _pools.Values];
            _pools.Clear();
        }
        foreach (var pool in pools) pool.Dispose();
    }

    private PoolLoader<TData, TPrediction> GetPool(string modelName)
    {
        if (_disposed) throw new ObjectDisposedException(nameof(PredictionEnginePool<TData, TPrediction>));
        modelName ??= string.Empty;
        if (modelName.Length == 0)
            return _defaultPool ?? throw new ArgumentException(NoDefaultModelMessage, nameof(modelName));

        lock (_poolsLock)
        {
            if (_disposed) throw new ObjectDisposedException(nameof(PredictionEnginePool<TData, TPrediction>));
            if (_pools.TryGetValue(modelName, out var pool)) return pool;
            // The name only selects named options; it never becomes a path.
            var loader = _optionsFactory.Create(modelName).ModelLoader
                ?? throw new ArgumentNullException("poolOptions",
                    $"No model named '{modelName}' is configured for PredictionEnginePool<{typeof(TData).Name}, {typeof(TPrediction).Name}>. " +
                    $"Configured: {Describe(_pools.Keys)}. Add it with FromFile(\"{modelName}\", path) or FromUri(\"{modelName}\", uri).");
            pool = new PoolLoader<TData, TPrediction>(modelName, loader, _context, _logger, s_owners);
            _pools[modelName] = pool;
            return pool;
        }
    }

    private static string Describe(IEnumerable<string> names)
    {
        var list = names.Select(n => n.Length == 0 ? "the default model" : $"'{n}'").ToList();
        return list.Count == 0 ? "none loaded yet" : string.Join(", ", list);
    }
}
