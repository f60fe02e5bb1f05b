using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Lightning.Serving;

/// <summary>The served models by name (only the configured names; a name is never a path) and the server's readiness.</summary>
internal sealed class OnnxModelRegistry : IDisposable
{
    private readonly Dictionary<string, ServedModel> _models = new(StringComparer.Ordinal);
    private volatile bool _started;
    private volatile bool _stopping;

    public OnnxModelRegistry(IOptions<OnnxInferenceOptions> options, IOptionsMonitor<OnnxModelOptions> modelOptions,
        InferenceMetrics metrics, ILoggerFactory loggerFactory)
    {
        Options = options.Value;
        Metrics = metrics;
        ParseSlots = new SemaphoreSlim(Options.MaxConcurrentParsing, Options.MaxConcurrentParsing);
        var logger = loggerFactory.CreateLogger("Lightning.Serving.OnnxInference");
        foreach (var name in Options.ModelNames.Distinct(StringComparer.Ordinal))
            _models[name] = new ServedModel(name, modelOptions.Get(name), metrics, logger);
    }

    public OnnxInferenceOptions Options { get; }

    public InferenceMetrics Metrics { get; }

    /// <summary>Requests reading or parsing their body now; see <see cref="OnnxInferenceOptions.MaxConcurrentParsing"/>.</summary>
    public SemaphoreSlim ParseSlots { get; }

    public IReadOnlyCollection<string> Names => _models.Keys;

    /// <summary>True once started and until the shutdown begins.</summary>
    public bool IsLive => !_stopping;

    /// <summary>True when every model is loaded and the server is not stopping.</summary>
    public bool IsReady => _started && !_stopping && _models.Values.All(m => m.IsReady);

    public bool IsStopping => _stopping;

    public bool TryGet(string name, out ServedModel model) => _models.TryGetValue(name, out model!);

    public void Start()
    {
        foreach (var model in _models.Values) model.Start();
        _started = true;
    }

    /// <summary>New requests are refused from here on.</summary>
    public void BeginStopping() => _stopping = true;

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping = true;
        await Task.WhenAll(_models.Values.Select(m => m.StopAsync(cancellationToken))).ConfigureAwait(false);
    }

    public void Dispose()
    {
        foreach (var model in _models.Values) model.Dispose();
        ParseSlots.Dispose();
    }
}
