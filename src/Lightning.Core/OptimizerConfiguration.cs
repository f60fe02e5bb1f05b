using static TorchSharp.torch;

namespace Lightning;

/// <summary>When a learning-rate scheduler steps (Lightning's <c>interval</c>).</summary>
public enum SchedulerInterval
{
    /// <summary>After every training epoch.</summary>
    Epoch,
    /// <summary>After every optimizer step.</summary>
    Step,
}

/// <summary>A learning-rate scheduler and how the trainer steps it (Lightning's scheduler config dict).</summary>
/// <param name="Scheduler">The TorchSharp scheduler.</param>
/// <param name="Interval">Step it per epoch (default) or per optimizer step.</param>
/// <param name="Frequency">Step it every this many intervals.</param>
/// <param name="Monitor">The metric a plateau scheduler watches; required for <c>ReduceLROnPlateau</c>.</param>
/// <param name="Strict">Fail when <paramref name="Monitor"/> is not among the logged metrics (else skip the step).</param>
/// <param name="Name">The key <c>LearningRateMonitor</c> logs under (default <c>lr-{OptimizerType}</c>).</param>
public sealed record LrSchedulerConfig(
    optim.lr_scheduler.LRScheduler Scheduler,
    SchedulerInterval Interval = SchedulerInterval.Epoch,
    int Frequency = 1,
    string? Monitor = null,
    bool Strict = true,
    string? Name = null)
{
    /// <summary>True for <c>ReduceLROnPlateau</c>, which steps with the monitored metric.</summary>
    public bool ReduceOnPlateau => Scheduler is optim.lr_scheduler.impl.ReduceLROnPlateau;

    /// <summary>A scheduler stepped once per epoch.</summary>
    public static implicit operator LrSchedulerConfig(optim.lr_scheduler.LRScheduler scheduler) => new(scheduler);

    internal void Validate()
    {
        ArgumentNullException.ThrowIfNull(Scheduler);
        if (Frequency < 1)
            throw new ArgumentOutOfRangeException(nameof(Frequency), Frequency, $"Scheduler Frequency = {Frequency} is not allowed: it must be 1 or more.");
        if (ReduceOnPlateau && string.IsNullOrEmpty(Monitor))
            throw new ArgumentException(
                "A ReduceLROnPlateau scheduler needs Monitor, the metric to watch, e.g. new LrSchedulerConfig(scheduler, Monitor: \"val_loss\").");
    }
}

/// <summary>
/// What <see cref="LightningModule.ConfigureOptimizers"/> returns, in any of Lightning's forms: one optimizer, several
/// (manual optimization), optimizers with schedulers or scheduler configs, or none. Optimizers and arrays convert implicitly.
/// </summary>
public sealed class OptimizerConfiguration
{
    /// <summary>Optimizers and their schedulers.</summary>
    public OptimizerConfiguration(IEnumerable<optim.Optimizer> optimizers, IEnumerable<LrSchedulerConfig>? schedulers = null)
    {
        ArgumentNullException.ThrowIfNull(optimizers);
        Optimizers = optimizers.ToList();
        LrSchedulers = schedulers?.ToList() ?? [];
        if (Optimizers.Any(o => o is null)) throw new ArgumentException("ConfigureOptimizers returned a null optimizer.", nameof(optimizers));
        foreach (var scheduler in LrSchedulers) scheduler.Validate();
    }

    /// <summary>One optimizer and its schedulers (Lightning's <c>{"optimizer": ..., "lr_scheduler": ...}</c>).</summary>
    public OptimizerConfiguration(optim.Optimizer optimizer, params LrSchedulerConfig[] schedulers) : this([optimizer], schedulers) { }

    /// <summary>No optimizer: training steps run without updates (Lightning's <c>None</c>).</summary>
    public static OptimizerConfiguration None { get; } = new(Array.Empty<optim.Optimizer>());

    /// <summary>The optimizers, in the order the module returned them.</summary>
    public IReadOnlyList<optim.Optimizer> Optimizers { get; }

    /// <summary>The schedulers with their stepping rules.</summary>
    public IReadOnlyList<LrSchedulerConfig> LrSchedulers { get; }

    /// <summary>One optimizer.</summary>
    public static implicit operator OptimizerConfiguration(optim.Optimizer optimizer) => new(optimizer);

    /// <summary>Several optimizers (manual optimization).</summary>
    public static implicit operator OptimizerConfiguration(optim.Optimizer[] optimizers) => new(optimizers);

    /// <summary>Lightning's <c>([optimizers], [schedulers])</c>.</summary>
    public static implicit operator OptimizerConfiguration((optim.Optimizer[] Optimizers, LrSchedulerConfig[] Schedulers) pair) =>
        new(pair.Optimizers, pair.Schedulers);
}
