using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;
using Microsoft.ML;

namespace Lightning.Serving;

/// <summary>
/// Loads a model file and, when watching, reloads it after it is written, created or renamed over (an atomic
/// replace). A reload that fails keeps the previous model and token, so the next change is tried again.
/// </summary>
internal sealed class FileModelLoader : ModelLoader, IDisposable, IModelSource
{
    internal const string NotStartedMessage = "Start must be called on a ModelLoader before it can be used.";
    private const int OpenRetries = 100;
    private static readonly TimeSpan s_openRetryDelay = TimeSpan.FromMilliseconds(50);

    private readonly MLContext _context;
    private readonly ILogger _logger;
    private readonly Lock _reloadLock = new();
    private FileSystemWatcher? _watcher;
    private Timer? _debounce;
    private ModelReloadToken? _reloadToken;
    private ITransformer? _model;
    private string _filePath = "";
    private volatile bool _disposed;

    public FileModelLoader(IOptions<MLOptions> options, ILogger<FileModelLoader> logger)
    {
        _context = options.Value.MLContext;
        _logger = logger;
    }

    /// <summary>How long the file must stay quiet before it is reloaded: one copy raises several events.</summary>
    internal TimeSpan DebounceDelay { get; set; } = TimeSpan.FromMilliseconds(50);

    public string Source => _filePath;

    public void Start(string filePath, bool watchForChanges)
    {
        ArgumentNullException.ThrowIfNull(filePath);
        if (!File.Exists(filePath)) throw new ArgumentException($"The provided model file {filePath} doesn't exist.", nameof(filePath));
        _filePath = Path.GetFullPath(filePath);
        _model = Load();
        _reloadToken = new ModelReloadToken();
        if (!watchForChanges) return;

        _debounce = new Timer(_ => Reload(), null, Timeout.Infinite, Timeout.Infinite);
        // Watch the whole folder and match the name here: a rename-over reports the temp name as the old name, and
        // filters differ across platforms in whether they match the old or the new name.
        _watcher = new FileSystemWatcher(Path.GetDirectoryName(_filePath)!)
        {
            NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.CreationTime,
            IncludeSubdirectories = false,
        };
        _watcher.Changed += OnFileEvent;
        _watcher.Created += OnFileEvent;
        _watcher.Renamed += OnFileEvent;
        _watcher.EnableRaisingEvents = true;
    }

    public override IChangeToken GetReloadToken() =>
        _reloadToken ?? throw new InvalidOperationException(NotStartedMessage);

    public override ITransformer GetModel() =>
        _model ?? throw new InvalidOperationException(NotStartedMessage);

    private void OnFileEvent(object sender, FileSystemEventArgs e)
    {
        if (_disposed || !string.Equals(Path.GetFullPath(e.FullPath), _filePath, StringComparison.Ordinal)) return;
        try
        {
            _debounce?.Change(DebounceDelay, Timeout.InfiniteTimeSpan);
        }
        catch (ObjectDisposedException)
        {
            // Disposed between the check and the call: nothing to reload.
        }
    }

    /// <summary>Loads the file again; on success swaps the model, then the token, then fires the old token.</summary>
    internal void Reload()
    {
        lock (_reloadLock)
        {
            if (_disposed) return;
            PredictionEnginePoolLog.FileReloadBegin(_logger, _filePath);
            ITransformer model;
            try
            {
                model = Load();
            }
            catch (Exception e)
            {
                // Keep the model and the token: the pool stays registered on a token that the next good load fires.
                PredictionEnginePoolLog.FileReloadError(_logger, _filePath, e);
                return;
            }
            var previous = _reloadToken!;
            _model = model;
            _reloadToken = new ModelReloadToken();
            PredictionEnginePoolLog.FileReload(_logger, _filePath);
            previous.OnReload();
            PredictionEnginePoolLog.FileReloadEnd(_logger, _filePath);
        }
    }

    private ITransformer Load()
    {
        // Read the whole file first so the writer is never blocked for the length of a model load.
        var bytes = new MemoryStream();
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                using var file = new FileStream(_filePath, FileMode.Open, FileAccess.Read, FileShare.Read);
                bytes.SetLength(0);
                file.CopyTo(bytes);
                break;
            }
            catch (IOException) when (attempt < OpenRetries)
            {
                Thread.Sleep(s_openRetryDelay);
            }
            catch (IOException e)
            {
                throw new IOException($"Model file {_filePath} still got locked after 5 seconds, fail to reload.", e);
            }
        }
        bytes.Position = 0;
        return _context.Model.Load(bytes, out _);
    }

    public void Dispose()
    {
        lock (_reloadLock)
        {
            if (_disposed) return;
            _disposed = true;
            _watcher?.Dispose();
            _debounce?.Dispose();
        }
    }
}
