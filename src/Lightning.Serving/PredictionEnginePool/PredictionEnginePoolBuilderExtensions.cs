using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Lightning.Serving;

/// <summary>
/// <c>FromFile</c> and <c>FromUri</c>: the Microsoft.Extensions.ML overloads with the same defaults (watch files for
/// changes; poll URIs every 5 minutes). Each model loads when the pool first needs it (at host start in a host).
/// Only add models from trusted sources: loading a model runs the transforms it names.
/// </summary>
public static class PredictionEnginePoolBuilderExtensions
{
    private static readonly TimeSpan s_defaultPeriod = TimeSpan.FromMinutes(5);

    /// <summary>Adds the default model from a file and reloads it when the file changes.</summary>
    /// <param name="builder">The pool builder.</param>
    /// <param name="filePath">The model file (an ML.NET model zip).</param>
    /// <returns>The same builder.</returns>
    public static PredictionEnginePoolBuilder<TData, TPrediction> FromFile<TData, TPrediction>(
        this PredictionEnginePoolBuilder<TData, TPrediction> builder, string filePath)
        where TData : class
        where TPrediction : class, new()
        => builder.FromFile(string.Empty, filePath, watchForChanges: true);

    /// <summary>Adds the default model from a file.</summary>
    /// <param name="builder">The pool builder.</param>
    /// <param name="filePath">The model file.</param>
    /// <param name="watchForChanges">Reload when the file is written or replaced.</param>
    /// <returns>The same builder.</returns>
    public static PredictionEnginePoolBuilder<TData, TPrediction> FromFile<TData, TPrediction>(
        this PredictionEnginePoolBuilder<TData, TPrediction> builder, string filePath, bool watchForChanges)
        where TData : class
        where TPrediction : class, new()
        => builder.FromFile(string.Empty, filePath, watchForChanges);

    /// <summary>Adds a named model from a file and reloads it when the file changes.</summary>
    /// <param name="builder">The pool builder.</param>
    /// <param name="modelName">The model name; <c>""</c> for the default model.</param>
    /// <param name="filePath">The model file.</param>
    /// <returns>The same builder.</returns>
    public static PredictionEnginePoolBuilder<TData, TPrediction> FromFile<TData, TPrediction>(
        this PredictionEnginePoolBuilder<TData, TPrediction> builder, string modelName, string filePath)
        where TData : class
        where TPrediction : class, new()
        => builder.FromFile(modelName, filePath, watchForChanges: true);

    /// <summary>Adds a named model from a file.</summary>
    /// <param name="builder">The pool builder.</param>
    /// <param name="modelName">The model name; <c>""</c> for the default model. Only a key: it never becomes a path.</param>
    /// <param name="filePath">The model file; it must exist when the model loads.</param>
    /// <param name="watchForChanges">Reload when the file is written, created or renamed over.</param>
    /// <returns>The same builder.</returns>
    public static PredictionEnginePoolBuilder<TData, TPrediction> FromFile<TData, TPrediction>(
        this PredictionEnginePoolBuilder<TData, TPrediction> builder, string modelName, string filePath, bool watchForChanges)
        where TData : class
        where TPrediction : class, new()
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(modelName);
        ArgumentException.ThrowIfNullOrWhiteSpace(filePath);
        return builder.AddLoader(modelName, sp =>
        {
            var loader = new FileModelLoader(sp.GetRequiredService<IOptions<MLOptions>>(), sp.GetRequiredService<ILogger<FileModelLoader>>());
            loader.Start(filePath, watchForChanges);
            return loader;
        });
    }

    /// <summary>Adds the default model from a URI, polled every 5 minutes.</summary>
    /// <param name="builder">The pool builder.</param>
    /// <param name="uri">An absolute http or https URI.</param>
    /// <returns>The same builder.</returns>
    public static PredictionEnginePoolBuilder<TData, TPrediction> FromUri<TData, TPrediction>(
        this PredictionEnginePoolBuilder<TData, TPrediction> builder, string uri)
        where TData : class
        where TPrediction : class, new()
        => builder.FromUri(string.Empty, new Uri(uri), s_defaultPeriod);

    /// <summary>Adds a named model from a URI, polled every 5 minutes.</summary>
    /// <param name="builder">The pool builder.</param>
    /// <param name="modelName">The model name.</param>
    /// <param name="uri">An absolute http or https URI.</param>
    /// <returns>The same builder.</returns>
    public static PredictionEnginePoolBuilder<TData, TPrediction> FromUri<TData, TPrediction>(
        this PredictionEnginePoolBuilder<TData, TPrediction> builder, string modelName, string uri)
        where TData : class
        where TPrediction : class, new()
        => builder.FromUri(modelName, new Uri(uri), s_defaultPeriod);

    /// <summary>Adds a named model from a URI, polled every 5 minutes.</summary>
    /// <param name="builder">The pool builder.</param>
    /// <param name="modelName">The model name.</param>
    /// <param name="uri">An absolute http or https URI.</param>
    /// <returns>The same builder.</returns>
    public static PredictionEnginePoolBuilder<TData, TPrediction> FromUri<TData, TPrediction>(
        this PredictionEnginePoolBuilder<TData, TPrediction> builder, string modelName, Uri uri)
        where TData : class
        where TPrediction : class, new()
        => builder.FromUri(modelName, uri, s_defaultPeriod);

    /// <summary>Adds the default model from a URI, polled every <paramref name="period"/>.</summary>
    /// <param name="builder">The pool builder.</param>
    /// <param name="uri">An absolute http or https URI.</param>
    /// <param name="period">How often to ask (HEAD) whether the ETag changed.</param>
    /// <returns>The same builder.</returns>
    public static PredictionEnginePoolBuilder<TData, TPrediction> FromUri<TData, TPrediction>(
        this PredictionEnginePoolBuilder<TData, TPrediction> builder, string uri, TimeSpan period)
        where TData : class
        where TPrediction : class, new()
        => builder.FromUri(string.Empty, new Uri(uri), period);

    /// <summary>Adds a named model from a URI, polled every <paramref name="period"/>.</summary>
    /// <param name="builder">The pool builder.</param>
    /// <param name="modelName">The model name.</param>
    /// <param name="uri">An absolute http or https URI.</param>
    /// <param name="period">How often to ask (HEAD) whether the ETag changed.</param>
    /// <returns>The same builder.</returns>
    public static PredictionEnginePoolBuilder<TData, TPrediction> FromUri<TData, TPrediction>(
        this PredictionEnginePoolBuilder<TData, TPrediction> builder, string modelName, string uri, TimeSpan period)
        where TData : class
        where TPrediction : class, new()
        => builder.FromUri(modelName, new Uri(uri), period);

    /// <summary>
    /// Adds a named model downloaded from a URI. When the response carries an ETag, the URI is asked (HEAD) every
    /// <paramref name="period"/> and downloaded again only when the ETag changes; without one it is not polled.
    /// </summary>
    /// <param name="builder">The pool builder.</param>
    /// <param name="modelName">The model name; <c>""</c> for the default model.</param>
    /// <param name="uri">An absolute http or https URI.</param>
    /// <param name="period">How often to poll; must be positive.</param>
    /// <returns>The same builder.</returns>
    public static PredictionEnginePoolBuilder<TData, TPrediction> FromUri<TData, TPrediction>(
        this PredictionEnginePoolBuilder<TData, TPrediction> builder, string modelName, Uri uri, TimeSpan period)
        where TData : class
        where TPrediction : class, new()
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentNullException.ThrowIfNull(modelName);
        ArgumentNullException.ThrowIfNull(uri);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(period, TimeSpan.Zero);
        return builder.AddLoader(modelName, sp =>
        {
            var loader = new UriModelLoader(sp.GetRequiredService<IOptions<MLOptions>>(), sp.GetRequiredService<ILogger<UriModelLoader>>());
            loader.Start(uri, period);
            return loader;
        });
    }

    /// <summary>
    /// Scores ONNX-backed transforms (e.g. Lightning.MLNet's models) on a CUDA device; sets
    /// <see cref="MLOptions.GpuDeviceId"/> and <see cref="MLOptions.FallbackToCpu"/> for every pool. The device in
    /// effect is logged at start and shown in <see cref="ModelInfo.Device"/>.
    /// </summary>
    /// <param name="builder">The pool builder.</param>
    /// <param name="gpuDeviceId">The CUDA device index (0 for the first GPU).</param>
    /// <param name="fallbackToCpu">Score on the CPU when the GPU cannot be used, instead of failing the load.</param>
    /// <returns>The same builder.</returns>
    public static PredictionEnginePoolBuilder<TData, TPrediction> UseGpu<TData, TPrediction>(
        this PredictionEnginePoolBuilder<TData, TPrediction> builder, int gpuDeviceId = 0, bool fallbackToCpu = true)
        where TData : class
        where TPrediction : class, new()
    {
        ArgumentNullException.ThrowIfNull(builder);
        ArgumentOutOfRangeException.ThrowIfNegative(gpuDeviceId);
        builder.Services.Configure<MLOptions>(o =>
        {
            o.GpuDeviceId = gpuDeviceId;
            o.FallbackToCpu = fallbackToCpu;
        });
        return builder;
    }

    private static PredictionEnginePoolBuilder<TData, TPrediction> AddLoader<TData, TPrediction>(
        this PredictionEnginePoolBuilder<TData, TPrediction> builder, string modelName, Func<IServiceProvider, ModelLoader> start)
        where TData : class
        where TPrediction : class, new()
    {
        builder.Services.Configure<PredictionEnginePoolModelNames<TData, TPrediction>>(n => n.Names.Add(modelName));
        // The loader starts (and the model loads) when the pool creates these named options, not here.
        builder.Services.AddOptions<PredictionEnginePoolOptions<TData, TPrediction>>(modelName)
            .Configure<IServiceProvider>((options, sp) => options.ModelLoader = start(sp));
        return builder;
    }
}
