using System.Reflection;
using static TorchSharp.torch;

namespace Lightning.Callbacks;

/// <summary>
/// Logs the learning rate of every optimizer's parameter groups to the trainer's loggers, as Lightning's
/// <c>LearningRateMonitor</c>: under <c>lr-{OptimizerType}</c> (<c>lr-SGD</c>, <c>lr-Adam</c>), or the scheduler
/// config's <see cref="LrSchedulerConfig.Name"/>, with <c>-1</c>, <c>-2</c>, … for further optimizers of the same type and
/// <c>/pg1</c>, <c>/pg2</c>, … when an optimizer has several parameter groups.
/// </summary>
/// <remarks>
/// <para>
/// With <see cref="LoggingInterval"/> null, each scheduler's rate is logged at its own interval: at the start of every
/// epoch for epoch schedulers, before every logged training step (every <c>LogEveryNSteps</c>) for step schedulers;
/// optimizers without a scheduler are logged at both. <c>"step"</c> or <c>"epoch"</c> logs every rate at that interval.
/// The logger step is the number of optimizer steps taken so far, as for the trainer's own metrics. Values go straight to
/// <see cref="Trainer.Loggers"/> (Lightning does not use <c>self.log</c> for them either).
/// </para>
/// <para>With <see cref="LogMomentum"/>, <c>{name}-momentum</c> is logged too: the first beta for Adam-like optimizers, the momentum for SGD-like ones, else 0.</para>
/// </remarks>
/// <example><code>
/// var trainer = new Trainer(new TrainerOptions { Callbacks = [new LearningRateMonitor(loggingInterval: "step")] });
/// </code></example>
public sealed class LearningRateMonitor : Callback
{
    // TorchSharp 0.107 does not expose a scheduler's optimizer; read its internal field, else pair schedulers with optimizers by position.
    private static readonly FieldInfo? s_schedulerOptimizer =
        typeof(optim.lr_scheduler.LRScheduler).GetField("_optimizer", BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public);

    private readonly Dictionary<string, List<double>> _lrs = new(StringComparer.Ordinal);

    /// <summary>Logs learning rates at <paramref name="loggingInterval"/>.</summary>
    /// <param name="loggingInterval"><c>"step"</c>, <c>"epoch"</c>, or null to follow each scheduler's interval.</param>
    /// <param name="logMomentum">Also log each parameter group's momentum (or first beta).</param>
    public LearningRateMonitor(string? loggingInterval = null, bool logMomentum = false)
    {
        if (loggingInterval is not (null or "step" or "epoch"))
            throw new ArgumentOutOfRangeException(nameof(loggingInterval), loggingInterval,
                $"loggingInterval = \"{loggingInterval}\" is not allowed: it must be \"step\", \"epoch\" or null (follow each scheduler's interval).");
        LoggingInterval = loggingInterval;
        LogMomentum = logMomentum;
    }

    /// <summary><c>"step"</c>, <c>"epoch"</c>, or null to follow each scheduler's interval.</summary>
    public string? LoggingInterval { get; }

    /// <summary>Whether momentum values are logged too.</summary>
    public bool LogMomentum { get; }

    /// <summary>Every learning rate logged so far in this fit, by metric name.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<double>> Lrs =>
        _lrs.ToDictionary(e => e.Key, e => (IReadOnlyList<double>)e.Value.AsReadOnly(), StringComparer.Ordinal);

    /// <inheritdoc />
    public override void OnTrainStart(Trainer trainer, LightningModule module)
    {
        if (trainer.Loggers.Count == 0 && trainer.Options.FastDevRun == 0)
            throw new InvalidOperationException(
                "LearningRateMonitor needs a logger, but the trainer has none (Loggers = [] or Barebones = true). Add a logger or remove the callback.");
        if (LogMomentum && trainer.Optimizers.Any(o => o.ParamGroups.Any(g => g is not (optim.IBetas or optim.IMomentum))))
            Console.Error.WriteLine(
                "Warning: LearningRateMonitor(logMomentum: true), but some optimizers have no momentum; 0 is logged for them.");
        _lrs.Clear();
        foreach (var (name, _, _) in Entries(trainer)) _lrs[name] = [];
    }

    /// <inheritdoc />
    public override void OnTrainBatchStart(Trainer trainer, LightningModule module, object? batch, int batchIdx)
    {
        // Lightning's should_update_logs: the step about to be taken is a logging step, or training is stopping.
        bool logging = (trainer.GlobalStep + 1) % trainer.Options.LogEveryNSteps == 0 || trainer.ShouldStop;
        if (!logging || LoggingInterval == "epoch") return;
        Log(trainer, LoggingInterval is null ? SchedulerInterval.Step : null);
    }

    /// <inheritdoc />
    public override void OnTrainEpochStart(Trainer trainer, LightningModule module)
    {
        if (LoggingInterval == "step") return;
        Log(trainer, LoggingInterval is null ? SchedulerInterval.Epoch : null);
    }

    /// <summary>Logs the rates of schedulers stepping at <paramref name="interval"/> (all when null) and of optimizers without one.</summary>
    private void Log(Trainer trainer, SchedulerInterval? interval)
    {
        var stats = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var (name, group, scheduler) in Entries(trainer))
        {
            if (scheduler is not null && interval is { } wanted && scheduler.Interval != wanted) continue;
            var lr = group.LearningRate;
            stats[name] = lr;
            if (!_lrs.TryGetValue(name, out var history)) _lrs[name] = history = [];
            history.Add(lr);
            if (LogMomentum)
                stats[$"{name}-momentum"] = group switch
                {
                    optim.IBetas betas => betas.Betas.Item1,
                    optim.IMomentum momentum => momentum.Momentum,
                    _ => 0,
                };
        }
        if (stats.Count == 0) return;
        foreach (var logger in trainer.Loggers)
        {
            logger.LogMetrics(stats, trainer.GlobalStep);
            logger.Save();
        }
    }

    /// <summary>Every parameter group to log with its name and the scheduler config that drives it (null for optimizers without one).</summary>
    private static List<(string Name, optim.ILearningRateController Group, LrSchedulerConfig? Scheduler)> Entries(Trainer trainer)
    {
        var entries = new List<(string, optim.ILearningRateController, LrSchedulerConfig?)>();
        var seen = new List<optim.Optimizer>();
        var typeCounts = new Dictionary<Type, int>();
        var configs = trainer.LrSchedulerConfigs;
        for (int i = 0; i < configs.Count; i++)
        {
            if (OptimizerOf(configs[i], i, trainer) is not { } optimizer) continue;
            Add(optimizer, configs[i].Name ?? $"lr-{optimizer.GetType().Name}", configs[i], countType: configs[i].Name is null);
        }
        foreach (var optimizer in trainer.Optimizers)
            if (!seen.Contains(optimizer)) Add(optimizer, $"lr-{optimizer.GetType().Name}", null, countType: true);
        return entries;

        void Add(optim.Optimizer optimizer, string name, LrSchedulerConfig? config, bool countType)
        {
            seen.Add(optimizer);
            var type = optimizer.GetType();
            if (countType) typeCounts[type] = typeCounts.GetValueOrDefault(type) + 1;
            // Lightning's prefixing: the second optimizer of a type is "-1", the third "-2", …
            if (typeCounts.GetValueOrDefault(type) is var count and > 1) name += $"-{count - 1}";
            var groups = optimizer.ParamGroups.ToList();
            for (int g = 0; g < groups.Count; g++)
                entries.Add((groups.Count > 1 ? $"{name}/pg{g + 1}" : name, groups[g], config));
        }
    }

    private static optim.Optimizer? OptimizerOf(LrSchedulerConfig config, int index, Trainer trainer)
    {
        if (s_schedulerOptimizer?.GetValue(config.Scheduler) is optim.Optimizer optimizer) return optimizer;
        return trainer.Optimizers.Count == 0 ? null : trainer.Optimizers[Math.Min(index, trainer.Optimizers.Count - 1)];
    }
}
