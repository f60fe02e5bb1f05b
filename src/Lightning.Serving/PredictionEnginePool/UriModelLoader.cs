using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;
using Microsoft.ML;

namespace Lightning.Serving;

/// <summary>
/// Downloads a model and, when the server sends an ETag, polls it with HEAD every period and downloads again only
/// when the ETag changes. A failed poll or load keeps the previous model and tries again at the next poll.
/// </summary>
internal sealed class UriModelLoader : ModelLoader, IDisposable, IModelSource
{
    private static readonly HttpClient s_client = new(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
    {
        Timeout = Timeout.InfiniteTimeSpan,
    };

    private readonly MLContext _context;
    private readonly ILogger _logger;
    private readonly Lock _stateLock = new();
    private Timer? _timer;
    private ModelReloadToken? _reloadToken;
    private ITransformer? _model;
    private string? _eTag;
    private Uri? _uri;
    private TimeSpan _period;
    private volatile bool _disposed;

    public UriModelLoader(IOptions<MLOptions> options, ILogger<UriModelLoader> logger)
    {
        _context = options.Value.MLContext;
        _logger = logger;
    }

    /// <summary>The limit on one HEAD or GET, download included.</summary>
    internal TimeSpan RequestTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>The client used for requests; tests may swap it.</summary>
    internal HttpClient Client { get; set; } = s_client;

    public string Source => _uri?.ToString() ?? "";

    /// <summary>True once a poll is scheduled: after a start that got an ETag, never after one that got none.</summary>
    internal bool Polling => Volatile.Read(ref _timer) is not null;

    /// <summary>The ETag of the model serving now; null when the server sent none.</summary>
    internal string? ETag => _eTag;

    public void Start(Uri uri, TimeSpan period)
    {
        ArgumentNullException.ThrowIfNull(uri);
        if (!uri.IsAbsoluteUri || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
            throw new ArgumentException($"The model URI {uri} must be an absolute http or https URI; use FromFile for files.", nameof(uri));
        if (period <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(period), period, "The polling period must be positive.");
        _uri = uri;
        _period = period;
        try
        {
            (_model, _eTag) = DownloadAsync(CancellationToken.None).GetAwaiter().GetResult();
        }
        catch (Exception e)
        {
            PredictionEnginePoolLog.UriLoadError(_logger, uri, e);
            throw;
        }
        _reloadToken = new ModelReloadToken();
        if (_eTag is null)
        {
            PredictionEnginePoolLog.UriNoETag(_logger, uri);
            return;
        }
        // One-shot and re-armed after each run, so a slow download never overlaps the next poll.
        _timer = new Timer(_ => _ = PollAsync(), null, period, Timeout.InfiniteTimeSpan);
    }

    public override IChangeToken GetReloadToken() =>
        _reloadToken ?? throw new InvalidOperationException(FileModelLoader.NotStartedMessage);

    public override ITransformer GetModel() =>
        _model ?? throw new InvalidOperationException(FileModelLoader.NotStartedMessage);

    private async Task PollAsync()
    {
        if (_disposed) return;
        var uri = _uri!;
        PredictionEnginePoolLog.UriReloadBegin(_logger, uri);
        try
        {
            using var timeout = new CancellationTokenSource(RequestTimeout);
            using var head = await Client.SendAsync(new HttpRequestMessage(HttpMethod.Head, uri), timeout.Token).ConfigureAwait(false);
            head.EnsureSuccessStatusCode();
            var eTag = head.Headers.ETag?.Tag;
            // No ETag now: nothing to compare, so keep the model and ask again next time instead of failing.
            if (eTag is not null && eTag != _eTag)
            {
                var (model, newETag) = await DownloadAsync(timeout.Token).ConfigureAwait(false);
                lock (_stateLock)
                {
                    if (_disposed) return;
                    var previous = _reloadToken!;
                    _model = model;
                    _eTag = newETag ?? eTag;
                    _reloadToken = new ModelReloadToken();
                    previous.OnReload();
                }
            }
        }
        catch (Exception e)
        {
            PredictionEnginePoolLog.UriReloadError(_logger, uri, e);
        }
        finally
        {
            PredictionEnginePoolLog.UriReloadEnd(_logger, uri);
            lock (_stateLock)
            {
                if (!_disposed) _timer?.Change(_period, Timeout.InfiniteTimeSpan);
            }
        }
    }

    private async Task<(ITransformer Model, string? ETag)> DownloadAsync(CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(RequestTimeout);
        using var response = await Client.GetAsync(_uri, HttpCompletionOption.ResponseContentRead, timeout.Token).ConfigureAwait(false);
        response.EnsureSuccessStatusCode();
        var bytes = new MemoryStream();
        await response.Content.CopyToAsync(bytes, timeout.Token).ConfigureAwait(false);
        bytes.Position = 0;
        return (_context.Model.Load(bytes, out _), response.Headers.ETag?.Tag);
    }

    public void Dispose()
    {
        lock (_stateLock)
        {
            if (_disposed) return;
            _disposed = true;
            _timer?.Dispose();
        }
    }
}
