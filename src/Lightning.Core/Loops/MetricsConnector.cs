using Lightning.Loggers;
using Lightning.Metrics;
using TorchSharp;

namespace Lightning.Loops;

/// <summary>
/// Collects what <c>Log</c> records, applies Lightning's per-hook defaults and rules, reduces epoch values (weighted by
/// batch size for means) and sends metrics to the loggers. Only doubles are kept, so no tensor outlives its step;
/// a logged <see cref="Metric"/> keeps its own state, and is computed at the epoch's end and reset (Lightning's
/// semantics for torchmetrics objects).
/// </summary>
internal sealed class MetricsConnector
{
    private sealed class Accumulator(ReduceFx reduce, bool progBar, bool toLogger, bool syncDist)
    {
        private double _sum, _weight, _extreme = reduce == ReduceFx.Min ? double.PositiveInfinity : double.NegativeInfinity;

        public bool ProgBar { get; } = progBar;
        public bool ToLogger { get; } = toLogger;

        /// <summary>Reduced across ranks at the epoch's end (once), from every rank's sum and weight, so a mean is the global one.</summary>
        public bool PendingSync { get; private set; } = syncDist;

        public void Sync(Func<double[], ReduceFx, double[]> reduceAcrossRanks)
        {
            var totals = reduceAcrossRanks([_sum, _weight], ReduceFx.Sum);
            (_sum, _weight) = (totals[0], totals[1]);
            _extreme = reduceAcrossRanks([_extreme], reduce == ReduceFx.Min ? ReduceFx.Min : ReduceFx.Max)[0];
            PendingSync = false;
        }

        public void Add(double value, int batchSize)
        {
            _sum += reduce == ReduceFx.Mean ? value * batchSize : value;
            _weight += batchSize;
            _extreme = reduce == ReduceFx.Min ? Math.Min(_extreme, value) : Math.Max(_extreme, value);
        }

        public double Value => reduce switch
        {
            ReduceFx.Mean => _sum / _weight,
            ReduceFx.Sum => _sum,
            _ => _extreme,
        };
    }

    /// <summary>A metric object logged this epoch: computed once when the epoch's values are published (a collective under "ddp"), reset when the epoch ends.</summary>
    private sealed class MetricEntry(Metric metric, bool epoch, bool progBar, bool toLogger)
    {
        public Metric Metric { get; } = metric;
        public bool Epoch { get; set; } = epoch;
        public bool ProgBar { get; set; } = progBar;
        public bool ToLogger { get; set; } = toLogger;
        public double? Value { get; set; }

        public double Compute()
        {
            if (Value is { } value) return value;
            using var computed = Metric.Compute();
            return (Value = computed.ToDouble()).Value;
        }
    }

    private readonly Dictionary<string, double> _callback = new();
    private readonly Dictionary<string, MetricEntry> _epochMetrics = new();
    private readonly Dictionary<string, double> _logged = new();
    private readonly Dictionary<string, double> _progressBar = new();
    private readonly Dictionary<string, double> _pendingStep = new();
    private readonly Dictionary<string, Accumulator> _epoch = new();
    private Dictionary<string, double>? _beforeScratch;

    public IReadOnlyDictionary<string, double> CallbackMetrics => _callback;
    public IReadOnlyDictionary<string, double> LoggedMetrics => _logged;
    public IReadOnlyDictionary<string, double> ProgressBarMetrics => _progressBar;

    public HookContext Context { get; set; }
    public string Hook { get; set; } = "";
    public bool Disabled { get; set; }

    /// <summary>Reduces values across "ddp" ranks (set by the trainer when there are several); null: <c>syncDist</c> has nothing to do.</summary>
    public Func<double[], ReduceFx, double[]>? SyncDist { get; set; }

    /// <summary>Batch size of the batch in flight, for weighting means; found on demand from the batch itself.</summary>
    public Func<int>? BatchSizeOfCurrentBatch { get; set; }

    /// <summary>Logs of the data-parallel replica running on this thread, taken by <see cref="CaptureOnThisThread"/>.</summary>
    [ThreadStatic] private static List<LoggedMetric>? s_captured;

    /// <summary>Runs <paramref name="step"/> with its <c>Log</c> calls on this thread kept aside instead of recorded (a data-parallel replica's share of a batch); returns them.</summary>
    public static List<LoggedMetric> CaptureOnThisThread(Action step)
    {
        s_captured = [];
        try
        {
            step();
            return s_captured;
        }
        finally
        {
            s_captured = null;
        }
    }

    public void Record(LoggedMetric metric)
    {
        if (s_captured is { } captured)
        {
            captured.Add(metric);
            return;
        }
        var (name, value, progBar, onStep, onEpoch, reduceFx, batchSize, logger, syncDist, source) = metric;
        if (Disabled)
            throw new InvalidOperationException($"Log('{name}') is turned off by Barebones = true; remove the call or turn Barebones off.");
        if (Context == HookContext.None)
            throw new InvalidOperationException($"You can't Log() inside {Hook}. Log from a step or an epoch hook.");
        bool inStep = Context is HookContext.TrainingStep or HookContext.EvaluationStep;
        bool step = onStep ?? Context == HookContext.TrainingStep;
        bool epoch = onEpoch ?? Context != HookContext.TrainingStep;
        if (step && !inStep)
            throw new InvalidOperationException($"You can't Log(onStep: true) inside {Hook}, must be one of [false].");
        if (!step && !epoch)
            throw new ArgumentException($"Metric '{name}' is logged with onStep = false and onEpoch = false; at least one must be true.");
        if (batchSize is <= 0)
            throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, $"batchSize = {batchSize} for metric '{name}' is not allowed: it must be 1 or more.");

        if (source is not null)
        {
            RecordMetricObject(name, source, step, epoch, inStep, progBar, logger);
            return;
        }

        // An epoch-only value inside a step is reduced once at the epoch's end; anything else now, as it is recorded.
        var syncAtEpochEnd = syncDist && SyncDist is not null && inStep && !step;
        if (syncDist && SyncDist is { } reduce && !syncAtEpochEnd) value = reduce([value], reduceFx)[0];

        if (step) RecordStepValue(name, value, epoch, progBar, logger);
        if (epoch)
        {
            var key = step ? $"{name}_epoch" : name;
            if (!_epoch.TryGetValue(key, out var accumulator))
                _epoch[key] = accumulator = new Accumulator(reduceFx, progBar, logger, syncAtEpochEnd);
            var weight = reduceFx == ReduceFx.Mean && inStep ? batchSize ?? BatchSizeOfCurrentBatch?.Invoke() ?? 1 : 1;
            accumulator.Add(value, weight);
            // Outside steps the value is final at once, so monitoring callbacks later in the same hook see it.
            if (!inStep) _callback[key] = accumulator.Value;
        }
    }

    private void RecordStepValue(string name, double value, bool epoch, bool progBar, bool logger)
    {
        var stepKey = epoch ? $"{name}_step" : name;
        if (logger) _pendingStep[stepKey] = value;
        _callback[stepKey] = value;
        if (epoch) _callback[name] = value;
        if (progBar) _progressBar[stepKey] = value;
    }

    /// <summary>
    /// A metric object: its step value is the batch's (<see cref="Metric.Forward"/>); its epoch value is computed when the
    /// epoch's values are published. Either way it is reset when the epoch ends, as Lightning resets logged metrics.
    /// </summary>
    private void RecordMetricObject(string name, Metric source, bool step, bool epoch, bool inStep, bool progBar, bool logger)
    {
        if (step)
        {
            var value = source.BatchValue ?? throw new InvalidOperationException(
                $"Log('{name}', {source.Name}) with onStep = true logs the value of the batch: call {nameof(Metric.Forward)}(preds, target) " +
                $"in the step ({nameof(Metric.Update)} adds to the state without computing), or log with onStep: false.");
            RecordStepValue(name, value, epoch, progBar, logger);
        }
        var key = step && epoch ? $"{name}_epoch" : name;
        if (!_epochMetrics.TryGetValue(key, out var entry) || !ReferenceEquals(entry.Metric, source))
            _epochMetrics[key] = entry = new MetricEntry(source, epoch, progBar, logger);
        (entry.Epoch, entry.ProgBar, entry.ToLogger) = (epoch, progBar, logger);
        // Outside steps the value is final at once, so monitoring callbacks later in the same hook see it.
        if (epoch && !inStep) _callback[key] = entry.Compute();
    }

    public void EndTrainingStep(IReadOnlyList<LightningLogger> loggers, int epoch, long step, bool sendToLoggers)
    {
        if (_pendingStep.Count == 0) return;
        if (sendToLoggers) Send(loggers, _pendingStep, epoch, step);
        _pendingStep.Clear();
    }

    /// <summary>Publishes this epoch's reduced values to the callback metrics (Lightning's <c>epoch_end_reached</c>).</summary>
    public void PublishEpochValues()
    {
        // Every rank logs the same keys; sorted, they meet in the same collectives in the same order.
        if (SyncDist is { } reduce)
            foreach (var (_, accumulator) in _epoch.OrderBy(e => e.Key, StringComparer.Ordinal).Where(e => e.Value.PendingSync))
                accumulator.Sync(reduce);
        foreach (var (key, accumulator) in _epoch) Publish(key, accumulator.Value, accumulator.ProgBar);
        // Computing syncs the metric's states under "ddp": every rank computes the same keys in the same order.
        foreach (var (key, entry) in _epochMetrics.Where(e => e.Value.Epoch).OrderBy(e => e.Key, StringComparer.Ordinal))
            Publish(key, entry.Compute(), entry.ProgBar);
    }

    private void Publish(string key, double value, bool progBar)
    {
        _callback[key] = value;
        if (key.EndsWith("_epoch", StringComparison.Ordinal)) _callback[key[..^"_epoch".Length]] = value;
        if (progBar) _progressBar[key] = value;
    }

    /// <summary>Sends this epoch's reduced values to the loggers and starts a new epoch; returns them.</summary>
    public Dictionary<string, double> EndEpoch(IReadOnlyList<LightningLogger> loggers, int epoch, long step, bool sendToLoggers)
    {
        PublishEpochValues();
        var values = _epoch.ToDictionary(e => e.Key, e => e.Value.Value);
        var forLoggers = _epoch.Where(e => e.Value.ToLogger).ToDictionary(e => e.Key, e => e.Value.Value);
        foreach (var (key, entry) in _epochMetrics.Where(e => e.Value.Epoch))
        {
            values[key] = entry.Compute();
            if (entry.ToLogger) forLoggers[key] = entry.Compute();
        }
        _epoch.Clear();
        ResetMetricObjects();
        if (sendToLoggers && forLoggers.Count > 0) Send(loggers, forLoggers, epoch, step);
        return values;
    }

    /// <summary>What is logged from now until <see cref="EndScratchRun"/> is no real result (the sanity check, tuning steps).</summary>
    public void BeginScratchRun()
    {
        if (_beforeScratch is not null) throw new InvalidOperationException("A scratch run (sanity check or tuning steps) is already under way.");
        _beforeScratch = new Dictionary<string, double>(_callback);
    }

    /// <summary>Forgets what was logged since <see cref="BeginScratchRun"/>.</summary>
    public void EndScratchRun()
    {
        _epoch.Clear();
        ResetMetricObjects();
        _callback.Clear();
        foreach (var (key, value) in _beforeScratch!) _callback[key] = value;
        _progressBar.Clear();
        _beforeScratch = null;
    }

    private void ResetMetricObjects()
    {
        foreach (var entry in _epochMetrics.Values) entry.Metric.Reset();
        _epochMetrics.Clear();
    }

    private void Send(IReadOnlyList<LightningLogger> loggers, IReadOnlyDictionary<string, double> metrics, int epoch, long step)
    {
        var row = new Dictionary<string, double>(metrics) { ["epoch"] = epoch };
        foreach (var (key, value) in row) _logged[key] = value;
        foreach (var logger in loggers)
        {
            logger.LogMetrics(row, step);
            logger.Save();
        }
    }
}
