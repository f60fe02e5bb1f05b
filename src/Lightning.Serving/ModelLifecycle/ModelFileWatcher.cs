using Microsoft.Extensions.Primitives;

namespace Lightning.Serving;

/// <summary>
/// A model loaded from a file and, when watching, loaded again after the file is written, created or renamed over (an
/// atomic replace). The file is read whole first, retrying while another process holds it (a copy still being
/// written). A load that fails keeps the previous model and token, so the next change of the file is tried again; a
/// load that succeeds swaps in the model and a new token, then fires the old token. The prediction engine pool's
/// <c>FromFile</c> and the v2 served models both reload their files this way.
/// </summary>
/// <typeparam name="TModel">What the file's bytes load into.</typeparam>
internal sealed class ModelFileWatcher<TModel> : IDisposable
    where TModel : class
{
    private const int OpenRetries = 100;
    private static readonly TimeSpan s_openRetryDelay = TimeSpan.FromMilliseconds(50);

    private readonly Func<byte[], TModel> _load;
    private readonly TimeSpan _debounceDelay;
    private readonly Lock _reloadLock = new();
    private FileSystemWatcher? _watcher;
    private Timer? _debounce;
    private ModelReloadToken? _reloadToken;
    private TModel? _model;
    private volatile bool _disposed;

    /// <param name="filePath">The model file, as a full path.</param>
    /// <param name="load">Loads the file's bytes; it throws when they are not a model.</param>
    /// <param name="debounceDelay">How long the file must stay quiet before it is reloaded: one copy raises several events.</param>
    public ModelFileWatcher(string filePath, Func<byte[], TModel> load, TimeSpan debounceDelay)
    {
        FilePath = filePath;
        _load = load;
        _debounceDelay = debounceDelay;
    }

    public string FilePath { get; }

    /// <summary>Runs when a reload begins.</summary>
    public Action? Reloading { get; init; }

    /// <summary>Runs after a reload swapped the model in, before the old token fires.</summary>
    public Action? Reloaded { get; init; }

    /// <summary>Runs when a reload fails; the previous model keeps serving.</summary>
    public Action<Exception>? ReloadFailed { get; init; }

    /// <summary>Runs once per load when the file cannot be opened yet (another process holds it) and the read is retried.</summary>
    public Action? FileLocked { get; init; }

    /// <summary>The model loaded last; null before <see cref="Load"/>.</summary>
    public TModel? Model => Volatile.Read(ref _model);

    /// <summary>The token the next successful reload fires; null before <see cref="Load"/>.</summary>
    public IChangeToken? ReloadToken => Volatile.Read(ref _reloadToken);

    /// <summary>Loads the file the first time; a failure throws.</summary>
    public void Load()
    {
        _model = _load(Read());
        _reloadToken = new ModelReloadToken();
    }

    /// <summary>
    /// Starts watching the file. Separate from <see cref="Load"/> so that the owner can take the first model and
    /// subscribe to its token before any reload can fire it.
    /// </summary>
    public void Watch()
    {
        _debounce = new Timer(_ => Reload(), null, Timeout.Infinite, Timeout.Infinite);
        // Watch the whole folder and match the name here: a rename-over reports the temp name as the old name, and
        // filters differ across platforms in whether they match the old or the new name.
        _watcher = new FileSystemWatcher(Path.GetDirectoryName(FilePath)!)
        {
            NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.CreationTime,
            IncludeSubdirectories = false,
        };
        _watcher.Changed += OnFileEvent;
        _watcher.Created += OnFileEvent;
        _watcher.Renamed += OnFileEvent;
        _watcher.EnableRaisingEvents = true;
    }

    private void OnFileEvent(object sender, FileSystemEventArgs e)
    {
        if (_disposed || !string.Equals(Path.GetFullPath(e.FullPath), FilePath, StringComparison.Ordinal)) return;
        try
        {
            _debounce?.Change(_debounceDelay, Timeout.InfiniteTimeSpan);
        }
        catch (ObjectDisposedException)
        {
            // Disposed between the check and the call: nothing to reload.
        }
    }

    /// <summary>Loads the file again; on success swaps the model, then the token, then fires the old token.</summary>
    public void Reload()
    {
        lock (_reloadLock)
        {
            if (_disposed || _reloadToken is null) return;
            Reloading?.Invoke();
            TModel model;
            try
            {
                model = _load(Read());
            }
            catch (Exception e)
            {
                // Keep the model and the token: whoever listens stays registered on a token that the next good load fires.
                if (!_disposed) ReloadFailed?.Invoke(e);
                return;
            }
            var previous = _reloadToken;
            Volatile.Write(ref _model, model);
            Volatile.Write(ref _reloadToken, new ModelReloadToken());
            try
            {
                Reloaded?.Invoke();
                previous.OnReload();
            }
            catch (Exception e) when (!_disposed)
            {
                // Listeners run on the debounce timer's thread, where an escaping exception would end the process.
                ReloadFailed?.Invoke(e);
            }
        }
    }

    private byte[] Read()
    {
        // Read the whole file first so the writer is never blocked for the length of a model load.
        var bytes = new MemoryStream();
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                using var file = new FileStream(FilePath, FileMode.Open, FileAccess.Read, FileShare.Read);
                bytes.SetLength(0);
                file.CopyTo(bytes);
                return bytes.ToArray();
            }
            catch (FileNotFoundException e)
            {
                throw new FileNotFoundException($"Model file '{FilePath}' does not exist.", FilePath, e);
            }
            catch (DirectoryNotFoundException e)
            {
                throw new FileNotFoundException($"Model file '{FilePath}' does not exist: its folder is missing.", FilePath, e);
            }
            catch (IOException) when (attempt < OpenRetries && !_disposed)
            {
                if (attempt == 1) FileLocked?.Invoke();
                Thread.Sleep(s_openRetryDelay);
            }
            catch (IOException e)
            {
                throw new IOException(
                    $"Model file '{FilePath}' could not be read: another process held it for {OpenRetries * s_openRetryDelay.TotalSeconds:0} seconds.", e);
            }
        }
    }

    /// <summary>Stops watching; a reload in progress stops retrying and is dropped.</summary>
    public void Dispose()
    {
        _disposed = true;
        lock (_reloadLock)
        {
            _watcher?.Dispose();
            _debounce?.Dispose();
        }
    }
}
