using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.Extensions.Logging;

namespace Lightning.Serving;

/// <summary>
/// A model repository laid out as Triton's: <c>root/&lt;name&gt;/&lt;version&gt;/model.onnx</c>, with an optional
/// <c>root/&lt;name&gt;/config.json</c> for batching, the execution provider and the version policy. Loading a model
/// serves the versions its policy picks, all at once, each watching its file through the same reload as a model added by
/// path. A name from a request is only ever compared with the folder names listed here, never joined into a path, so
/// no request can reach a file outside the repository.
/// </summary>
internal sealed partial class ModelRepository : IDisposable
{
    public const string ModelFileName = "model.onnx";
    public const string ConfigFileName = "config.json";

    private readonly OnnxModelRegistry _registry;
    private readonly bool _loadAllOnStart;
    private readonly SemaphoreSlim _changing = new(1, 1);
    /// <summary>Why a model failed to load last, by name; cleared by a successful load or an unload.</summary>
    private readonly Dictionary<string, string> _failures = new(StringComparer.Ordinal);
    private volatile bool _disposed;

    public ModelRepository(string root, OnnxModelRegistry registry, bool loadAllOnStart)
    {
        Root = Path.GetFullPath(root);
        _registry = registry;
        _loadAllOnStart = loadAllOnStart;
    }

    /// <summary>The repository folder, as a full path.</summary>
    public string Root { get; }

    /// <summary>Loads every model when the host starts (unless explicit loading was chosen); a model that fails is logged and left unloaded.</summary>
    public void LoadOnStart()
    {
        if (!Directory.Exists(Root))
            throw new InvalidOperationException(
                $"The model repository '{Root}' does not exist; create it with one folder per model, each holding <version>/{ModelFileName}.");
        if (!_loadAllOnStart) return;
        foreach (var name in ModelNames())
        {
            try
            {
                LoadAsync(name).GetAwaiter().GetResult();
            }
            catch (RepositoryException ex)
            {
                _registry.Logger.LogError("Model repository '{Root}': {Message}", Root, ex.Message);
            }
        }
    }

    /// <summary>The model folders: names that the routes allow (letters, digits, '_', '-', '.'), in ordinal order.</summary>
    public IReadOnlyList<string> ModelNames() =>
        Directory.Exists(Root)
            ? [.. Directory.EnumerateDirectories(Root).Select(Path.GetFileName).OfType<string>().Where(n => ModelName().IsMatch(n)).Order(StringComparer.Ordinal)]
            : [];

    /// <summary>Every version folder of every model with its state: READY when served and ready, else UNAVAILABLE and why.</summary>
    public IReadOnlyList<RepositoryIndexEntry> Index()
    {
        var entries = new List<RepositoryIndexEntry>();
        foreach (var name in ModelNames())
        {
            var served = _registry.Versions(name);
            string? failure;
            lock (_failures) _failures.TryGetValue(name, out failure);
            if (_registry.Options.ModelNames.Contains(name, StringComparer.Ordinal))
            {
                foreach (var version in VersionFolders(name))
                    entries.Add(new RepositoryIndexEntry(name, version.ToString(System.Globalization.CultureInfo.InvariantCulture), "UNAVAILABLE", TakenName(name)));
                continue;
            }
            HashSet<long>? selected = null;
            try
            {
                selected = [.. ReadConfig(name).Policy.Select(VersionFolders(name))];
            }
            catch (RepositoryException ex)
            {
                failure ??= ex.Message;
            }
            foreach (var version in VersionFolders(name))
            {
                var text = version.ToString(System.Globalization.CultureInfo.InvariantCulture);
                var model = served.FirstOrDefault(m => m.Version == text);
                if (model is not null && model.IsReady)
                {
                    entries.Add(new RepositoryIndexEntry(name, text, "READY", ""));
                    continue;
                }
                var reason = model is not null ? "loaded but not ready (its batch loop is restarting, or the server is stopping)"
                    : failure ?? (selected is not null && !selected.Contains(version) ? "not selected by the version policy"
                    : served.Count == 0 ? "unloaded" : "not loaded yet (load the model again to serve it)");
                entries.Add(new RepositoryIndexEntry(name, text, "UNAVAILABLE", reason));
            }
        }
        return entries;
    }

    /// <summary>
    /// Loads (or reloads) a model: the versions its policy picks are loaded first, and only when all of them load do they
    /// replace what serves; the versions that stop serving finish their queued requests and are disposed.
    /// </summary>
    /// <exception cref="RepositoryException">404 for a name that is not a model folder; 400 when the model cannot load (the old versions keep serving).</exception>
    public async Task LoadAsync(string name)
    {
        var folder = Folder(name);
        await _changing.WaitAsync().ConfigureAwait(false);
        var loaded = new List<ServedModel>();
        try
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            var config = ReadConfig(folder);
            var versions = config.Policy.Select(VersionFolders(folder)).ToList();
            if (versions.Count == 0)
                throw new RepositoryException(400,
                    $"failed to load model '{folder}': no version folder with {ModelFileName} is selected by its version policy ({config.Policy}); " +
                    $"the version folders are [{string.Join(", ", VersionFolders(folder))}].");
            foreach (var version in versions)
            {
                var text = version.ToString(System.Globalization.CultureInfo.InvariantCulture);
                var options = config.ToOptions(Path.Combine(Root, folder, text, ModelFileName));
                var model = new ServedModel(folder, text, options, _registry.Metrics, _registry.Logger);
                loaded.Add(model);
                try
                {
                    model.Start();
                }
                catch (Exception ex)
                {
                    throw new RepositoryException(400, $"failed to load model '{folder}' version {text}: {ex.Message}");
                }
            }
            var retired = _registry.Swap(folder, loaded);
            lock (_failures) _failures.Remove(folder);
            _registry.Logger.LogInformation("Model repository: model '{Model}' serves version(s) {Versions}.", folder, string.Join(", ", versions));
            _ = DrainAsync(retired);
        }
        catch (RepositoryException ex)
        {
            foreach (var model in loaded) model.Dispose();
            lock (_failures) _failures[folder] = ex.Message;
            throw;
        }
        finally
        {
            _changing.Release();
        }
    }

    /// <summary>Stops serving a model; its versions finish their queued requests and are disposed.</summary>
    /// <exception cref="RepositoryException">404 for a name that is not a model folder.</exception>
    public async Task UnloadAsync(string name)
    {
        var folder = Folder(name);
        await _changing.WaitAsync().ConfigureAwait(false);
        try
        {
            var retired = _registry.Swap(folder, []);
            lock (_failures) _failures.Remove(folder);
            _registry.Logger.LogInformation("Model repository: model '{Model}' unloaded.", folder);
            _ = DrainAsync(retired);
        }
        finally
        {
            _changing.Release();
        }
    }

    /// <summary>Requests already queued on a version that stopped serving still run (for up to 30 seconds); then it is disposed.</summary>
    private static async Task DrainAsync(IReadOnlyList<ServedModel> retired)
    {
        foreach (var model in retired)
        {
            using var drain = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            try
            {
                await model.StopAsync(drain.Token).ConfigureAwait(false);
            }
            finally
            {
                model.Dispose();
            }
        }
    }

    /// <summary>The model folder named <paramref name="name"/>: found among the listed folders, never built from the name.</summary>
    private string Folder(string name)
    {
        var names = ModelNames();
        foreach (var folder in names)
        {
            if (!string.Equals(folder, name, StringComparison.Ordinal)) continue;
            // A model added by path keeps its name: a repository folder of the same name would replace it unseen.
            if (_registry.Options.ModelNames.Contains(folder, StringComparer.Ordinal)) throw new RepositoryException(400, TakenName(folder));
            return folder;
        }
        throw new RepositoryException(404,
            $"model '{name}' is not in the model repository; its models are [{string.Join(", ", names.Select(n => $"'{n}'"))}].");
    }

    private static string TakenName(string name) =>
        $"model '{name}' is added by path (AddModel), so the repository folder '{name}' is not served; rename one of them.";

    /// <summary>The numeric version folders of a model that hold a model file, ascending.</summary>
    private IReadOnlyList<long> VersionFolders(string folder) =>
        [.. Directory.EnumerateDirectories(Path.Combine(Root, folder))
            .Select(d => (Name: Path.GetFileName(d), Path: d))
            .Where(d => d.Name.Length is > 0 and <= 18 && d.Name.All(char.IsAsciiDigit) && File.Exists(Path.Combine(d.Path, ModelFileName)))
            .Select(d => long.Parse(d.Name, System.Globalization.CultureInfo.InvariantCulture))
            .Where(v => v > 0)
            .Order()];

    private ModelConfig ReadConfig(string folder)
    {
        var path = Path.Combine(Root, folder, ConfigFileName);
        if (!File.Exists(path)) return ModelConfig.Default;
        try
        {
            return ModelConfig.Parse(File.ReadAllBytes(path), $"'{folder}/{ConfigFileName}'");
        }
        catch (Exception ex) when (ex is JsonException or IOException or FormatException)
        {
            throw new RepositoryException(400, $"failed to load model '{folder}': '{folder}/{ConfigFileName}' cannot be read: {ex.Message}");
        }
    }

    public void Dispose()
    {
        _disposed = true;
    }

    [GeneratedRegex(@"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,127}$")]
    private static partial Regex ModelName();
}
