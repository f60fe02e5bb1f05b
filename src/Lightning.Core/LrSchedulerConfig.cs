using static TorchSharp.torch;

namespace Lightning;

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
