using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;

namespace Lightning.Serving;

/// <summary>
/// One served model: the current <see cref="LoadedModel"/>, its dynamic batcher (one queue, one batch at a time, requests
/// merged along dim 0 up to <see cref="OnnxModelOptions.MaxBatchSize"/> rows or <see cref="OnnxModelOptions.MaxQueueDelayMicroseconds"/>,
/// waiting only while more requests are arriving; a request that finds the model idle runs on its own thread) and its
/// reload: a <see cref="ModelFileWatcher{TModel}"/> loads the changed file and a <see cref="GenerationSlot{TGeneration}"/>
/// swaps it in, retiring the old generation once its last run is over.
/// </summary>
internal sealed class ServedModel : IDisposable
{
    private readonly Channel<Pending> _queue;
    private readonly InferenceMetrics _metrics;
    private readonly ILogger _logger;
    private readonly GenerationSlot<LoadedModel> _generations = new();
    /// <summary>
    /// Runs in progress (the batcher's and inline ones); a request runs inline only while there are fewer than
    /// <see cref="OnnxModelOptions.MaxConcurrentRuns"/>. Claimed with a compare-and-swap, not a lock: a lock here was the
    /// one point every request of the model went through, and on a loaded machine its holder could be descheduled.
    /// </summary>
    private int _runners;
    /// <summary>
    /// Requests in the queue or being written to it: counted up before the write and down after each read, so it is
    /// never below the queue's length. Read by the inline check instead of the channel's count, which takes its lock.
    /// </summary>
    private int _waiting;
    private Task _loop = Task.CompletedTask;
    private ModelFileWatcher<LoadedModel>? _file;
    private IDisposable? _reloadRegistration;
    private long _runs;
    private int _arriving;
    private int _forming;
    /// <summary>Completed when the last arriving request is in; the batcher waits on it besides the queue and the deadline.</summary>
    private TaskCompletionSource? _arrivalsDone;
    private volatile bool _stopping;
    /// <summary>False from a fault of the batch loop until it has restarted: the model cannot serve queued requests meanwhile.</summary>
    private volatile bool _loopHealthy = true;
    /// <summary>The batch being formed or run, so that a fault of the loop fails exactly these requests.</summary>
    private readonly List<Pending> _batch = [];
    /// <summary>Fires when the model stops: a loop pausing before its restart ends instead.</summary>
    private readonly CancellationTokenSource _stop = new();
    private readonly Prometheus.Gauge.Child _queueDepth;
    private readonly Prometheus.Counter.Child _runsCounter;
    private readonly Prometheus.Histogram.Child _batchSize;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<int, Prometheus.Counter.Child> _requestsByStatus = new();

    public ServedModel(string name, string version, OnnxModelOptions options, InferenceMetrics metrics, ILogger logger)
    {
        Name = name;
        Version = version;
        Options = options;
        _metrics = metrics;
        _logger = logger;
        _queue = Channel.CreateBounded<Pending>(new BoundedChannelOptions(options.MaxQueueSize)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = true,
        });
        // The series exists from the start, at 0, even while requests run inline and never queue.
        // The labelled series are looked up once: each lookup allocates, and they are touched on every request.
        _queueDepth = _metrics.QueueDepth.WithLabels(name);
        _runsCounter = _metrics.Runs.WithLabels(name);
        _batchSize = _metrics.BatchSize.WithLabels(name);
        Latency = _metrics.Latency.WithLabels(name);
        _queueDepth.Set(0);
    }

    public string Name { get; }

    /// <summary>This model's series of the request latency histogram.</summary>
    public Prometheus.Histogram.Child Latency { get; }

    /// <summary>This model's series of the request counter for one HTTP status.</summary>
    public Prometheus.Counter.Child Requests(int status) =>
        _requestsByStatus.GetOrAdd(status, (code, m) => m._metrics.Requests.WithLabels(m.Name, code.ToString(System.Globalization.CultureInfo.InvariantCulture)), this);

    /// <summary>The version the v2 routes serve this model as: "1" for a model added by path, the folder name in a repository.</summary>
    public string Version { get; }

    public OnnxModelOptions Options { get; }

    /// <summary>The generation serving now; null before the start.</summary>
    public LoadedModel? Current => _generations.Current;

    /// <summary>ONNX Runtime runs so far (fewer than requests when the batcher merges them).</summary>
    public long RunCount => Interlocked.Read(ref _runs);

    public bool IsReady => Current is not null && !_stopping && _loopHealthy;

    /// <summary>Faults of the batch loop so far; each failed its batch and restarted the loop.</summary>
    public int LoopFaults => Volatile.Read(ref _loopFaults);

    private int _loopFaults;

    /// <summary>How long a faulted batch loop pauses (not ready, answering 503) before it restarts; a test hook lengthens it.</summary>
    internal TimeSpan RestartDelay { get; set; } = TimeSpan.FromMilliseconds(50);

    /// <summary>Requests that went through the queue (the others ran at once on their caller's thread).</summary>
    internal long Queued => Interlocked.Read(ref _queued);

    private long _queued;

    /// <summary>Test hook: runs on the caller's thread as a request starts an inline run.</summary>
    internal Action? InlineRunStarting { get; set; }

    /// <summary>Test hook: runs in the batch loop as it starts waiting for more requests to join the batch.</summary>
    internal Action? WaitingForPartners { get; set; }

    /// <summary>Test hook: runs in the batch loop after a batch is formed, before it runs; an exception from it is a loop fault.</summary>
    internal Action<int>? BatchFormed { get; set; }

    /// <summary>Test hook: requests dropped from the queue because their caller went away or their timeout expired.</summary>
    internal long Dropped => Interlocked.Read(ref _dropped);

    private long _dropped;

    /// <summary>Test hook: runs ONNX Runtime stopped part-way because their request's timeout expired or its caller went away.</summary>
    internal long StoppedRuns => Interlocked.Read(ref _stoppedRuns);

    private long _stoppedRuns;

    /// <summary>Requests waiting in the queue.</summary>
    internal int QueueLength => _queue.Reader.Count;

    /// <summary>
    /// Marks a request for this model as arriving (its body being read and parsed, until it is queued) until the returned
    /// scope is disposed. A batch waits for partners, up to <see cref="OnnxModelOptions.MaxQueueDelayMicroseconds"/>,
    /// only while some request is arriving, so it never waits for partners that are not coming.
    /// </summary>
    public ArrivalScope Arrive()
    {
        Interlocked.Increment(ref _arriving);
        return new ArrivalScope(this);
    }

    /// <summary>Ends one <see cref="Arrive"/>; the last one wakes a batcher that waits for partners.</summary>
    internal readonly struct ArrivalScope(ServedModel model) : IDisposable
    {
        public void Dispose()
        {
            if (Interlocked.Decrement(ref model._arriving) == 0) Volatile.Read(ref model._arrivalsDone)?.TrySetResult();
        }
    }

    /// <summary>Test hook: requests in the batch the batcher is forming now.</summary>
    internal int Forming => Volatile.Read(ref _forming);

    /// <summary>Test hook: while set, the batcher waits for this task before taking the next batch.</summary>
    internal Task? RunGate { get; set; }

    /// <summary>Loads the file (a failure ends the start), starts the batcher and, if asked, the file watcher.</summary>
    public void Start()
    {
        var path = System.IO.Path.GetFullPath(Options.Path);
        if (!File.Exists(path))
            throw new FileNotFoundException($"Model '{Name}': the ONNX file '{path}' does not exist.", path);
        // Numbered from the generation serving while it loads: loads run one at a time and each swaps in before the next.
        _file = new ModelFileWatcher<LoadedModel>(path, bytes => LoadedModel.Load(Name, bytes, Options, _logger, (Current?.Generation ?? 0) + 1),
            TimeSpan.FromMilliseconds(Options.ReloadDebounceMilliseconds))
        {
            ReloadFailed = ex =>
            {
                _metrics.Reloads.WithLabels(Name, "failure").Inc();
                _logger.LogWarning(ex, "Model '{Model}': reloading '{Path}' failed, so generation {Generation} keeps serving: {Message}",
                    Name, path, Current?.Generation, ex.Message);
            },
            FileLocked = () => _logger.LogDebug(
                "Model '{Model}': '{Path}' is held by another process (still being written?); reading it is retried for up to 5 seconds.", Name, path),
        };
        try
        {
            _file.Load();
        }
        catch (Exception ex) when (ex is not InvalidOperationException)
        {
            throw new InvalidOperationException($"Model '{Name}': ONNX Runtime could not load '{path}': {ex.Message}", ex);
        }
        var first = _file.Model!;
        _generations.Replace(first);
        _logger.LogInformation("Model '{Model}' loaded from '{Path}' on {Provider}.", Name, path, first.ExecutionProvider);
        _loop = Task.Run(SuperviseLoopAsync);
        _reloadRegistration = ChangeToken.OnChange(() => _file.ReloadToken!, SwapInReloaded);
        if (Options.WatchForChanges) _file.Watch();
    }

    /// <summary>Serves the generation the watcher has just loaded; the old one is disposed once its last run is over.</summary>
    private void SwapInReloaded()
    {
        var next = _file!.Model!;
        if (!_generations.Replace(next)) return;
        _metrics.Reloads.WithLabels(Name, "success").Inc();
        _logger.LogInformation("Model '{Model}' reloaded from '{Path}' (generation {Generation}, {Provider}).",
            Name, _file.FilePath, next.Generation, next.ExecutionProvider);
    }

    /// <summary>Validates a request against the current model and queues it for the batcher.</summary>
    /// <param name="inputs">The request's inputs.</param>
    /// <param name="outputs">The requested outputs; null for all.</param>
    /// <param name="cancellationToken">The caller going away (or its timeout): a request still queued then is dropped, never run.</param>
    /// <exception cref="InferenceRequestException">The request does not fit the model.</exception>
    /// <exception cref="InferenceUnavailableException">The queue is full, the model is stopping or its batch loop is restarting.</exception>
    public Task<InferenceTensor[]> InferAsync(IReadOnlyList<InferenceTensor> inputs, IReadOnlyList<string>? outputs,
        CancellationToken cancellationToken = default)
    {
        var model = Current ?? throw new InferenceUnavailableException($"model '{Name}' is not loaded yet.");
        if (_stopping) throw new InferenceUnavailableException($"model '{Name}' is shutting down and takes no new requests.");
        if (!_loopHealthy) throw new InferenceUnavailableException($"model '{Name}' is restarting its batch loop after a fault; retry shortly.");
        cancellationToken.ThrowIfCancellationRequested();
        var (ordered, rows, key) = model.Validate(inputs, outputs, Options.MaxBatchSize);
        if (TryRunInline(model, ordered, rows, outputs, cancellationToken, out var inline)) return inline;
        var pending = new Pending(inputs, outputs, cancellationToken) { Model = model, Ordered = ordered, Rows = rows, Key = key };
        Interlocked.Increment(ref _waiting);
        if (!_queue.Writer.TryWrite(pending))
        {
            Interlocked.Decrement(ref _waiting);
            if (_stopping) throw new InferenceUnavailableException($"model '{Name}' is shutting down and takes no new requests.");
            throw new InferenceUnavailableException(
                $"model '{Name}' exceeds maximum queue size: {Options.MaxQueueSize} requests are already waiting; retry later.");
        }
        _queueDepth.Inc();
        Interlocked.Increment(ref _queued);
        // The caller's task ends at once when it goes away; the batcher drops the request when it reaches it.
        if (cancellationToken.CanBeCanceled)
            pending.Registration = cancellationToken.Register(static p => ((Pending)p!).Completion.TrySetCanceled(), pending);
        return pending.Completion.Task;
    }

    /// <summary>
    /// Runs the batch loop until the queue completes. A fault (a bug, an out-of-memory while merging, a hook) fails the
    /// requests of the batch in hand with 503, marks the model not ready, and restarts the loop after a short pause, so
    /// one bad batch can never leave the model queuing requests that nobody runs.
    /// </summary>
    private async Task SuperviseLoopAsync()
    {
        while (true)
        {
            try
            {
                await RunLoopAsync().ConfigureAwait(false);
                return;
            }
            catch (Exception ex)
            {
                _loopHealthy = false;
                Interlocked.Increment(ref _loopFaults);
                _logger.LogError(ex, "Model '{Model}': the batch loop failed ({Message}); failing its {Count} requests and restarting it.",
                    Name, ex.Message, _batch.Count);
                foreach (var pending in _batch) Fail(pending, new InferenceUnavailableException(
                    $"model '{Name}' failed while batching this request ({ex.GetType().Name}); the batcher restarted, retry the request."));
                _batch.Clear();
                Volatile.Write(ref _forming, 0);
                if (_stopping) return;
                try
                {
                    await Task.Delay(RestartDelay, _stop.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                _loopHealthy = true;
            }
        }
    }

    private static void Fail(Pending pending, Exception error)
    {
        pending.Registration.Dispose();
        pending.Completion.TrySetException(error);
    }

    /// <summary>Takes the next queued request that is still wanted; one whose caller went away or timed out is dropped unrun.</summary>
    private bool TryTake(ChannelReader<Pending> reader, out Pending pending)
    {
        while (reader.TryRead(out pending!))
        {
            Interlocked.Decrement(ref _waiting);
            _queueDepth.Dec();
            if (!pending.Cancellation.IsCancellationRequested) return true;
            Interlocked.Increment(ref _dropped);
            pending.Completion.TrySetCanceled(pending.Cancellation);
        }
        return false;
    }

    private async Task RunLoopAsync()
    {
        var reader = _queue.Reader;
        var batch = _batch;
        long delayTicks = Options.MaxQueueDelayMicroseconds * Stopwatch.Frequency / 1_000_000;
        while (await reader.WaitToReadAsync().ConfigureAwait(false))
        {
            if (RunGate is { } gate) await gate.ConfigureAwait(false);
            batch.Clear();
            if (!TryTake(reader, out var first)) continue;
            // From here a fault of the loop fails this request too.
            batch.Add(first);
            if (_generations.Acquire() is not { } model)
            {
                Fail(first, new InferenceUnavailableException($"model '{Name}' shut down before the request ran."));
                batch.Clear();
                continue;
            }
            Interlocked.Increment(ref _runners);
            try
            {
                if (!Revalidate(first, model))
                {
                    batch.Clear();
                    continue;
                }
                Volatile.Write(ref _forming, 1);
                long rows = first.Rows;
                long deadline = Stopwatch.GetTimestamp() + delayTicks;
                // One wait for the queue per batch: a timer that fires early loops back with the same wait still pending.
                Task<bool>? more = null;
                while (model.Batchable && rows < Options.MaxBatchSize)
                {
                    if (reader.TryPeek(out var next))
                    {
                        if (next.Cancellation.IsCancellationRequested)
                        {
                            TryTake(reader, out _);
                            continue;
                        }
                        if (!Revalidate(next, model))
                        {
                            reader.TryRead(out _);
                            Interlocked.Decrement(ref _waiting);
                            _queueDepth.Dec();
                            continue;
                        }
                        if (next.Key != first.Key || rows + next.Rows > Options.MaxBatchSize) break;
                        reader.TryRead(out _);
                        Interlocked.Decrement(ref _waiting);
                        _queueDepth.Dec();
                        batch.Add(next);
                        Volatile.Write(ref _forming, batch.Count);
                        rows += next.Rows;
                        continue;
                    }
                    long remaining = deadline - Stopwatch.GetTimestamp();
                    if (remaining <= 0 || _stopping) break;
                    // Published (with a full fence) before reading the count, so the last arrival either is seen here or signals it.
                    var arrivalsDone = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    Interlocked.Exchange(ref _arrivalsDone, arrivalsDone);
                    // Nothing queued and nothing on its way: waiting longer only adds latency.
                    if (Volatile.Read(ref _arriving) == 0) break;
                    more ??= reader.WaitToReadAsync().AsTask();
                    // Timers count whole milliseconds of a coarse tick, so one can fire up to a millisecond early and a
                    // wait under 1 ms would not wait at all: round up, and on waking let the loop check the deadline again.
                    var timeout = Task.Delay(TimeSpan.FromMilliseconds(Math.Ceiling(remaining * 1000.0 / Stopwatch.Frequency)));
                    WaitingForPartners?.Invoke();
                    var woke = await Task.WhenAny(more, timeout, arrivalsDone.Task).ConfigureAwait(false);
                    if (woke == more)
                    {
                        if (!more.Result) break;
                        more = null;
                    }
                }
                BatchFormed?.Invoke(batch.Count);
                Execute(model, batch);
                batch.Clear();
            }
            finally
            {
                Volatile.Write(ref _forming, 0);
                EndRun(model);
            }
        }
    }

    private void EndRun(LoadedModel model)
    {
        Interlocked.Decrement(ref _runners);
        model.Release();
    }

    /// <summary>
    /// Runs the request on the caller's thread when the model is idle: no run in progress or batch forming, nothing
    /// queued. That skips the two thread hops through the batcher; requests that come meanwhile queue and merge as before.
    /// </summary>
    private bool TryRunInline(LoadedModel model, InferenceTensor[] ordered, long rows, IReadOnlyList<string>? outputs,
        CancellationToken cancellationToken, out Task<InferenceTensor[]> result)
    {
        result = null!;
        // Retired meanwhile: the batcher validates the request again against the generation that replaced it.
        if (!model.TryAcquire()) return false;
        bool idle = false;
        int max = Options.MaxConcurrentRuns;
        for (int runners = Volatile.Read(ref _runners); runners < max; runners = Volatile.Read(ref _runners))
        {
            if (RunGate is not null || Volatile.Read(ref _waiting) != 0 || !ReferenceEquals(model, Current)) break;
            if (Interlocked.CompareExchange(ref _runners, runners + 1, runners) == runners)
            {
                idle = true;
                break;
            }
        }
        if (!idle)
        {
            model.Release();
            return false;
        }
        try
        {
            InlineRunStarting?.Invoke();
            // Expired while it was read and parsed: it never runs.
            if (cancellationToken.IsCancellationRequested)
            {
                result = Task.FromCanceled<InferenceTensor[]>(cancellationToken);
                return true;
            }
            result = Task.FromResult(Select(Count(model, rows, () => model.Run(ordered, cancellationToken)), outputs));
        }
        catch (OperationCanceledException ex) when (cancellationToken.IsCancellationRequested)
        {
            Interlocked.Increment(ref _stoppedRuns);
            result = Task.FromCanceled<InferenceTensor[]>(ex.CancellationToken);
        }
        catch (Exception ex)
        {
            result = Task.FromException<InferenceTensor[]>(RunFailure(ex));
        }
        finally
        {
            EndRun(model);
        }
        return true;
    }

    private bool Revalidate(Pending pending, LoadedModel model)
    {
        if (ReferenceEquals(pending.Model, model)) return true;
        try
        {
            (pending.Ordered, pending.Rows, pending.Key) = model.Validate(pending.Inputs, pending.Outputs, Options.MaxBatchSize);
            pending.Model = model;
            return true;
        }
        catch (InferenceRequestException ex)
        {
            Fail(pending, ex);
            return false;
        }
    }

    private void Execute(LoadedModel model, List<Pending> batch)
    {
        if (batch.Count == 1)
        {
            RunOne(model, batch[0]);
            return;
        }
        InferenceTensor[] outputs;
        var everyoneGone = WhenAllCancelled(batch, out var registrations);
        try
        {
            var merged = new InferenceTensor[model.Inputs.Count];
            for (int i = 0; i < merged.Length; i++)
                merged[i] = TensorTypes.Concat([.. batch.Select(p => p.Ordered[i])]);
            outputs = Count(model, batch.Sum(p => p.Rows), () => model.Run(merged, everyoneGone?.Token ?? default));
            long total = batch.Sum(p => p.Rows);
            if (outputs.Any(o => o.Shape.Length == 0 || o.Shape[0] != total))
                throw new InvalidOperationException("an output's dim 0 does not follow the batch.");
        }
        catch (OperationCanceledException) when (everyoneGone is { IsCancellationRequested: true })
        {
            // Every caller of the batch went away or timed out, and each task already ended as cancelled.
            Interlocked.Increment(ref _stoppedRuns);
            foreach (var pending in batch)
            {
                pending.Registration.Dispose();
                pending.Completion.TrySetCanceled(pending.Cancellation);
            }
            return;
        }
        catch (Exception ex)
        {
            // The merged run failed: run each request on its own, so one bad request cannot fail the others.
            _logger.LogDebug(ex, "Model '{Model}': a merged run of {Count} requests failed; running them one by one.", Name, batch.Count);
            foreach (var pending in batch) RunOne(model, pending);
            return;
        }
        finally
        {
            // Disposing each registration waits for its callback in flight, so none cancels the source after its disposal.
            foreach (var registration in registrations) registration.Dispose();
            everyoneGone?.Dispose();
        }
        long start = 0;
        foreach (var pending in batch)
        {
            var mine = outputs.Select(o => TensorTypes.SliceRows(o, start, pending.Rows)).ToArray();
            start += pending.Rows;
            pending.Registration.Dispose();
            pending.Completion.TrySetResult(Select(mine, pending.Outputs));
        }
    }

    /// <summary>
    /// A source cancelled once every request of a merged batch is cancelled: the run serves the ones still waiting, so
    /// only the last one leaving stops it. Null when some request cannot be cancelled.
    /// </summary>
    private static CancellationTokenSource? WhenAllCancelled(List<Pending> batch, out CancellationTokenRegistration[] registrations)
    {
        registrations = [];
        foreach (var pending in batch)
            if (!pending.Cancellation.CanBeCanceled) return null;
        var all = new CancellationTokenSource();
        var left = new StrongBox<int>(batch.Count);
        registrations = new CancellationTokenRegistration[batch.Count];
        for (int i = 0; i < batch.Count; i++)
            registrations[i] = batch[i].Cancellation.UnsafeRegister(_ =>
            {
                if (Interlocked.Decrement(ref left.Value) == 0) all.Cancel();
            }, null);
        return all;
    }

    private void RunOne(LoadedModel model, Pending pending)
    {
        try
        {
            // Dropped while the batch formed: its caller is gone, so the run would be wasted.
            if (pending.Cancellation.IsCancellationRequested)
            {
                Interlocked.Increment(ref _dropped);
                pending.Completion.TrySetCanceled(pending.Cancellation);
                return;
            }
            var outputs = Count(model, pending.Rows, () => model.Run(pending.Ordered, pending.Cancellation));
            pending.Registration.Dispose();
            pending.Completion.TrySetResult(Select(outputs, pending.Outputs));
        }
        catch (OperationCanceledException) when (pending.Cancellation.IsCancellationRequested)
        {
            // The caller's task already ended as cancelled, when its token fired.
            Interlocked.Increment(ref _stoppedRuns);
            pending.Registration.Dispose();
            pending.Completion.TrySetCanceled(pending.Cancellation);
        }
        catch (Exception ex)
        {
            Fail(pending, RunFailure(ex));
        }
    }

    /// <summary>
    /// What a failed run answers. The request passed validation against the model's signature, so a node that fails on
    /// it (ONNX Runtime's InvalidArgument, such as a Gather index out of range, or a kernel's failure, such as a Reshape
    /// the rows do not fit) failed on values or sizes the signature cannot express: the client's 400. Running out of
    /// memory is the server's state, a 503 to retry; anything else is the server's 500.
    /// </summary>
    private Exception RunFailure(Exception ex)
    {
        if (ex is OutOfMemoryException || (ex is Microsoft.ML.OnnxRuntime.OnnxRuntimeException && IsOutOfMemory(ex.Message)))
            return new InferenceUnavailableException($"model '{Name}' ran out of memory on the request; retry later or send fewer rows: {ex.Message}");
        if (ex is Microsoft.ML.OnnxRuntime.OnnxRuntimeException &&
            (ex.Message.Contains("[ErrorCode:InvalidArgument]", StringComparison.Ordinal) ||
             ex.Message.Contains("Non-zero status code returned while running", StringComparison.Ordinal)))
            return new InferenceRequestException($"model '{Name}' cannot run the request's data: {ex.Message}");
        return new InferenceRunException($"model '{Name}' failed to run the request: {ex.Message}", ex);
    }

    private static bool IsOutOfMemory(string message) =>
        message.Contains("out of memory", StringComparison.OrdinalIgnoreCase) ||
        message.Contains("Failed to allocate memory", StringComparison.Ordinal) ||
        message.Contains("bad_alloc", StringComparison.Ordinal);

    private InferenceTensor[] Count(LoadedModel model, long rows, Func<InferenceTensor[]> run)
    {
        Interlocked.Increment(ref _runs);
        _runsCounter.Inc();
        _batchSize.Observe(model.Batchable ? rows : 1);
        return run();
    }

    private static InferenceTensor[] Select(InferenceTensor[] outputs, IReadOnlyList<string>? names) =>
        names is null ? outputs : [.. names.Select(n => outputs.First(o => o.Name == n))];

    /// <summary>Refuses new requests, lets the queued ones finish (until <paramref name="cancellationToken"/>), then disposes the session.</summary>
    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping = true;
        _file?.Dispose();
        _queue.Writer.TryComplete();
        _stop.Cancel();
        try
        {
            await _loop.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            // The drain ran out of time; what is still queued is failed below.
        }
        // Left when the drain timed out, or when the loop was pausing after a fault as the model stopped.
        while (_queue.Reader.TryRead(out var left))
        {
            Interlocked.Decrement(ref _waiting);
            Fail(left, new InferenceUnavailableException($"model '{Name}' shut down before the request ran."));
        }
    }

    public void Dispose()
    {
        _stopping = true;
        _file?.Dispose();
        _reloadRegistration?.Dispose();
        _queue.Writer.TryComplete();
        _stop.Cancel();
        // A run still in progress keeps its generation until it is over.
        _generations.Close();
    }

    private sealed class Pending(IReadOnlyList<InferenceTensor> inputs, IReadOnlyList<string>? outputs, CancellationToken cancellation)
    {
        public CancellationToken Cancellation { get; } = cancellation;
        public CancellationTokenRegistration Registration { get; set; }
        public IReadOnlyList<InferenceTensor> Inputs { get; } = inputs;
        public IReadOnlyList<string>? Outputs { get; } = outputs;
        public required LoadedModel Model { get; set; }
        public required InferenceTensor[] Ordered { get; set; }
        public required long Rows { get; set; }
        public required string Key { get; set; }
        public TaskCompletionSource<InferenceTensor[]> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
