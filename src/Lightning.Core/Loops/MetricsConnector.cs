using Lightning.Loggers;

namespace Lightning.Loops;

/// <summary>
/// Collects what <see cref="LightningModule.Log(string, double, bool, bool?, bool?)"/> records, applies Lightning's
/// per-hook defaults, reduces epoch values and sends metrics to the loggers. Only doubles are kept.
/// </summary>
internal sealed class MetricsConnector
{
    private readonly Dictionary<string, double> _callback = new();
    private readonly Dictionary<string, double> _logged = new();
    private readonly Dictionary<string, double> _progressBar = new();
    private readonly Dictionary<string, double> _pendingStep = new();
    private readonly Dictionary<string, (double Sum, long Count, bool ProgBar)> _epoch = new();
    private bool _inTrainingStep;

    public IReadOnlyDictionary<string, double> CallbackMetrics => _callback;
    public IReadOnlyDictionary<string, double> LoggedMetrics => _logged;
    public IReadOnlyDictionary<string, double> ProgressBarMetrics => _progressBar;

    public void Record(string name, double value, bool progBar, bool? onStep, bool? onEpoch)
    {
        bool step = onStep ?? _inTrainingStep, epoch = onEpoch ?? !_inTrainingStep;
        if (!step && !epoch)
            throw new ArgumentException($"Metric '{name}' is logged with onStep = false and onEpoch = false; at least one must be true.");
        if (step && !_inTrainingStep)
            throw new InvalidOperationException(
                $"Metric '{name}' cannot be logged with onStep = true outside a training step; use onEpoch = true.");

        var stepKey = step && epoch ? $"{name}_step" : name;
        if (step)
        {
            _pendingStep[stepKey] = value;
            _callback[stepKey] = value;
            if (progBar) _progressBar[stepKey] = value;
        }
        if (epoch)
        {
            var key = step ? $"{name}_epoch" : name;
            var (sum, count, _) = _epoch.GetValueOrDefault(key);
            _epoch[key] = (sum + value, count + 1, progBar);
        }
    }

    public void BeginTrainingStep() => _inTrainingStep = true;

    public void EndTrainingStep(IReadOnlyList<LightningLogger> loggers, int epoch, long step, bool sendToLoggers)
    {
        _inTrainingStep = false;
        if (_pendingStep.Count == 0) return;
        if (sendToLoggers) Send(loggers, _pendingStep, epoch, step);
        _pendingStep.Clear();
    }

    public void EndEpoch(IReadOnlyList<LightningLogger> loggers, int epoch, long step)
    {
        if (_epoch.Count == 0) return;
        var values = _epoch.ToDictionary(e => e.Key, e => e.Value.Sum / e.Value.Count);
        foreach (var (key, value) in values)
        {
            _callback[key] = value;
            if (key.EndsWith("_epoch", StringComparison.Ordinal)) _callback[key[..^"_epoch".Length]] = value;
            if (_epoch[key].ProgBar) _progressBar[key] = value;
        }
        _epoch.Clear();
        Send(loggers, values, epoch, step);
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
