using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Lightning.Serving;

/// <summary>
/// The served models by name and version (only names that were configured or found in the repository; a name is never
/// a path) and the server's readiness. Models added by path serve as version 1; a repository's models serve the versions
/// their policy picks, several at once. The set changes only through <see cref="Swap"/>, which publishes a new snapshot.
/// </summary>
internal sealed class OnnxModelRegistry : IDisposable
{
    /// <summary>Each name's versions, ascending by version number; replaced whole, never changed in place.</summary>
    private volatile Dictionary<string, ServedModel[]> _models = new(StringComparer.Ordinal);
    private readonly Lock _swapLock = new();
    private volatile bool _started;
    private volatile bool _stopping;

    public OnnxModelRegistry(IOptions<OnnxInferenceOptions> options, IOptionsMonitor<OnnxModelOptions> modelOptions,
        InferenceMetrics metrics, ILoggerFactory loggerFactory)
    {
        Options = options.Value;
        Metrics = metrics;
        ParseSlots = new SemaphoreSlim(Options.MaxConcurrentParsing, Options.MaxConcurrentParsing);
        Logger = loggerFactory.CreateLogger("Lightning.Serving.OnnxInference");
        var models = new Dictionary<string, ServedModel[]>(StringComparer.Ordinal);
        foreach (var name in Options.ModelNames.Distinct(StringComparer.Ordinal))
            models[name] = [new ServedModel(name, "1", modelOptions.Get(name), metrics, Logger)];
        _models = models;
        if (Options.RepositoryPath is { } root)
            Repository = new ModelRepository(root, this, Options.RepositoryLoadAllOnStart);
    }

    public OnnxInferenceOptions Options { get; }

    public InferenceMetrics Metrics { get; }

    public ILogger Logger { get; }

    /// <summary>The model repository; null when none is configured.</summary>
    public ModelRepository? Repository { get; }

    /// <summary>Requests reading or parsing their body now; see <see cref="OnnxInferenceOptions.MaxConcurrentParsing"/>.</summary>
    public SemaphoreSlim ParseSlots { get; }

    public IReadOnlyCollection<string> Names => _models.Keys;

    /// <summary>True once started and until the shutdown begins.</summary>
    public bool IsLive => !_stopping;

    /// <summary>True when every version of every model is loaded and can serve, and the server is not stopping.</summary>
    public bool IsReady => _started && !_stopping && _models.Values.All(versions => versions.All(m => m.IsReady));

    public bool IsStopping => _stopping;

    /// <summary>The latest version served under <paramref name="name"/>.</summary>
    public bool TryGet(string name, out ServedModel model)
    {
        model = null!;
        if (!_models.TryGetValue(name, out var versions) || versions.Length == 0) return false;
        model = versions[^1];
        return true;
    }

    /// <summary>The versions served under <paramref name="name"/>, ascending; empty when none.</summary>
    public IReadOnlyList<ServedModel> Versions(string name) => _models.TryGetValue(name, out var versions) ? versions : [];

    /// <summary>
    /// The model <paramref name="name"/> at <paramref name="version"/> (null or empty: the latest); otherwise false and
    /// a 404 message naming what is served.
    /// </summary>
    public bool TryFind(string name, string? version, out ServedModel model, out string error)
    {
        model = null!;
        error = "";
        if (!_models.TryGetValue(name, out var versions) || versions.Length == 0)
        {
            error = $"model '{name}' is not found; the served models are [{string.Join(", ", Names.Order(StringComparer.Ordinal).Select(n => $"'{n}'"))}].";
            return false;
        }
        if (string.IsNullOrEmpty(version))
        {
            model = versions[^1];
            return true;
        }
        foreach (var candidate in versions)
        {
            if (candidate.Version != version) continue;
            model = candidate;
            return true;
        }
        error = $"model '{name}' has no version '{version}'; its versions are [{string.Join(", ", versions.Select(v => $"'{v.Version}'"))}].";
        return false;
    }

    /// <summary>
    /// Serves <paramref name="versions"/> under <paramref name="name"/> from now on (none: the name is no longer served)
    /// and returns the versions that no longer serve, for the caller to drain and dispose.
    /// </summary>
    public IReadOnlyList<ServedModel> Swap(string name, IReadOnlyList<ServedModel> versions)
    {
        lock (_swapLock)
        {
            var next = new Dictionary<string, ServedModel[]>(_models, StringComparer.Ordinal);
            var old = next.TryGetValue(name, out var o) ? o : [];
            if (versions.Count == 0) next.Remove(name);
            else next[name] = [.. versions.OrderBy(v => long.TryParse(v.Version, out var n) ? n : long.MaxValue)];
            _models = next;
            return [.. old.Where(m => !versions.Contains(m))];
        }
    }

    public void Start()
    {
        foreach (var versions in _models.Values)
            foreach (var model in versions) model.Start();
        Repository?.LoadOnStart();
        _started = true;
    }

    /// <summary>New requests are refused from here on.</summary>
    public void BeginStopping() => _stopping = true;

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping = true;
        Repository?.Dispose();
        await Task.WhenAll(_models.Values.SelectMany(v => v).Select(m => m.StopAsync(cancellationToken))).ConfigureAwait(false);
    }

    public void Dispose()
    {
        Repository?.Dispose();
        foreach (var versions in _models.Values)
            foreach (var model in versions) model.Dispose();
        ParseSlots.Dispose();
    }
}
