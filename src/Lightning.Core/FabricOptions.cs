using Lightning.Loggers;
using Lightning.Precision;
using Lightning.Strategies;

namespace Lightning;

/// <summary>The options of a <see cref="Fabric"/>: the same accelerator, device, strategy and precision choices as <see cref="TrainerOptions"/>.</summary>
public sealed record FabricOptions
{
    /// <summary>"auto" (CUDA when present), "cpu", "cuda" or "gpu".</summary>
    public string Accelerator { get; init; } = "auto";

    /// <summary>Which devices: "auto", a count, -1 for all, or indices.</summary>
    public Devices Devices { get; init; } = Devices.Auto;

    /// <summary>
    /// "auto", "single_device" (Fabric runs one replica; use the Trainer for "dp"), "ddp": one process per device on
    /// MPI (started by <c>mpiexec -n N</c>, or relaunched under it), with gradients averaged in <see cref="Fabric.Backward"/>;
    /// "ddp_sharded" (aliases "zero_stage_2", "deepspeed_stage_2"): as "ddp", with gradients reduce-scattered and the
    /// optimizer state sharded over the processes in <see cref="Fabric.Step"/> (ZeRO stage 2); or a
    /// <see cref="Strategies.Strategy"/> instance of your own.
    /// </summary>
    public StrategyChoice Strategy { get; init; } = "auto";

    /// <summary>With "ddp" or "ddp_sharded", how long a collective waits for the other processes before this one fails (default 30 minutes).</summary>
    public TimeSpan DistributedTimeout { get; init; } = TimeSpan.FromMinutes(30);

    /// <summary>As <see cref="TrainerOptions.Precision"/>.</summary>
    public PrecisionChoice Precision { get; init; } = "32-true";

    /// <summary>As <see cref="TrainerOptions.MemoryFormat"/>: the layout of floating 4-D (5-D) batches from <see cref="Fabric.SetupDataLoader"/> and <see cref="Fabric.ToDevice"/>.</summary>
    public string MemoryFormat { get; init; } = "contiguous_format";

    /// <summary>As <see cref="TrainerOptions.MemoryFormatWeights"/>: <see cref="Fabric.Setup"/> lays out the module's convolution weights in <see cref="MemoryFormat"/> too (default true).</summary>
    public bool MemoryFormatWeights { get; init; } = true;

    /// <summary>Loggers that <see cref="Fabric.Log"/> writes to.</summary>
    public IReadOnlyList<LightningLogger> Loggers { get; init; } = [];

    internal void Validate()
    {
        if (DistributedTimeout <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(DistributedTimeout), DistributedTimeout, $"DistributedTimeout = {DistributedTimeout} is not allowed: it must be a positive duration.");
        Strategy.Validate();
        Precision.Validate();
        MemoryLayout.Validate(nameof(MemoryFormat), MemoryFormat);
        if (Loggers.Any(l => l is null)) throw new ArgumentException($"{nameof(Loggers)} contains null; every entry must be a logger.", nameof(Loggers));
    }
}
