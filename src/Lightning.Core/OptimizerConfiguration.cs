using static TorchSharp.torch;

namespace Lightning;

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
