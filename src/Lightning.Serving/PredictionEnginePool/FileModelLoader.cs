using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;
using Microsoft.ML;

namespace Lightning.Serving;

/// <summary>
/// Loads an ML.NET model file and, when watching, reloads it after it is written, created or renamed over (an atomic
/// replace), through <see cref="ModelFileWatcher{TModel}"/>. A reload that fails keeps the previous model and token, so
/// the next change is tried again.
/// </summary>
internal sealed class FileModelLoader : ModelLoader, IDisposable, IModelSource
{
    internal const string NotStartedMessage = "Start must be called on a ModelLoader before it can be used.";

    /// <summary>How long the file must stay quiet before it is reloaded: one copy raises several events.</summary>
    private static readonly TimeSpan s_debounceDelay = TimeSpan.FromMilliseconds(50);

    private readonly MLContext _context;
    private readonly ILogger _logger;
    private ModelFileWatcher<ITransformer>? _file;

    public FileModelLoader(IOptions<MLOptions> options, ILogger<FileModelLoader> logger)
    {
        _context = options.Value.MLContext;
        _logger = logger;
    }

    public string Source => _file?.FilePath ?? "";

    public void Start(string filePath, bool watchForChanges)
    {
        ArgumentNullException.ThrowIfNull(filePath);
        if (!File.Exists(filePath)) throw new ArgumentException($"The provided model file {filePath} doesn't exist.", nameof(filePath));
        var path = Path.GetFullPath(filePath);
        var file = new ModelFileWatcher<ITransformer>(path, bytes => _context.Model.Load(new MemoryStream(bytes, writable: false), out _), s_debounceDelay)
        {
            Reloading = () => PredictionEnginePoolLog.FileReloadBegin(_logger, path),
            Reloaded = () =>
            {
                PredictionEnginePoolLog.FileReload(_logger, path);
                PredictionEnginePoolLog.FileReloadEnd(_logger, path);
            },
            ReloadFailed = e => PredictionEnginePoolLog.FileReloadError(_logger, path, e),
            FileLocked = () => PredictionEnginePoolLog.FileLocked(_logger, path),
        };
        file.Load();
        if (watchForChanges) file.Watch();
        _file = file;
    }

    public override IChangeToken GetReloadToken() =>
        _file?.ReloadToken ?? throw new InvalidOperationException(NotStartedMessage);

    public override ITransformer GetModel() =>
        _file?.Model ?? throw new InvalidOperationException(NotStartedMessage);

    /// <summary>Loads the file again now, as a change of the file would.</summary>
    internal void Reload() => _file?.Reload();

    public void Dispose() => _file?.Dispose();
}
