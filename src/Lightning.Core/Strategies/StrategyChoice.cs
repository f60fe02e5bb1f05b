using TorchSharp;

namespace Lightning.Strategies;

/// <summary>
/// A strategy setting (Lightning's <c>strategy</c>): a name, or a <see cref="Strategy"/> of your own. Strings and
/// strategies convert implicitly, so <c>Strategy = "ddp"</c> and <c>Strategy = new MyStrategy()</c> both work. A name
/// gives every trainer a fresh strategy; an instance is used as it is (with its own settings, such as a timeout).
/// </summary>
public readonly record struct StrategyChoice
{
    private static readonly string[] s_names = ["auto", "single_device", "dp", "ddp", "ddp_sharded", "zero_stage_2", "deepspeed_stage_2"];

    /// <summary>Names of ZeRO stage 2 (<see cref="DdpShardedStrategy"/>): ours, and the aliases Lightning code uses.</summary>
    private static readonly string[] s_sharded = ["ddp_sharded", "zero_stage_2", "deepspeed_stage_2"];

    private StrategyChoice(string? name, Strategy? strategy) => (Name, Strategy) = (name, strategy);

    /// <summary>The name given, or null when a strategy was.</summary>
    public string? Name { get; }

    /// <summary>The strategy given, or null when a name was.</summary>
    public Strategy? Strategy { get; }

    /// <summary>
    /// "auto" ("ddp" for several GPUs, data parallel for several CPU devices, else one device), "single_device", "dp"
    /// (one process, each batch split across replicas), "ddp" (one process per device on MPI) or "ddp_sharded" (as "ddp",
    /// with gradients and optimizer state sharded over the processes: ZeRO stage 2; aliases "zero_stage_2" and
    /// "deepspeed_stage_2").
    /// </summary>
    public static implicit operator StrategyChoice(string name) =>
        new(name ?? throw new ArgumentNullException("Strategy", "Strategy = null is not allowed: use a name (\"auto\", \"single_device\", \"dp\", \"ddp\", \"ddp_sharded\") or a Strategy instance."), null);

    /// <summary>Your own strategy.</summary>
    public static implicit operator StrategyChoice(Strategy strategy) =>
        new(null, strategy ?? throw new ArgumentNullException("Strategy", "Strategy = null is not allowed: use a name or a Strategy instance."));

    /// <summary>True when this choice runs one process per device over several machines ("ddp", "ddp_sharded" or a <see cref="DdpStrategy"/>).</summary>
    internal bool SpansNodes => Strategy is DdpStrategy || Name == "ddp" || s_sharded.Contains(Name);

    /// <inheritdoc />
    public override string ToString() => Strategy?.GetType().Name ?? Name ?? "auto";

    /// <summary>Fails naming the allowed names when the name is unknown.</summary>
    internal void Validate()
    {
        if (Strategy is null && !s_names.Contains(Name ?? "auto"))
            throw new ArgumentOutOfRangeException("Strategy", Name, $"Strategy = \"{Name}\" is not allowed: use one of {string.Join(", ", s_names.Select(s => $"\"{s}\""))}, or a Strategy instance.");
    }

    /// <summary>
    /// The strategy for a run on <paramref name="deviceCount"/> devices of <paramref name="deviceType"/>: the given one,
    /// or a fresh built-in one (the name was validated with the options). "auto" picks as Lightning does: one process per
    /// device ("ddp") for several GPUs; for several CPU devices, replicas in this process ("dp").
    /// </summary>
    internal Strategy Create(int deviceCount, DeviceType deviceType, TimeSpan distributedTimeout) =>
        Strategy ?? (Name ?? "auto") switch
        {
            "single_device" => new SingleDeviceStrategy(),
            "dp" => new DataParallelStrategy(),
            "ddp" => new DdpStrategy(distributedTimeout),
            "ddp_sharded" or "zero_stage_2" or "deepspeed_stage_2" => new DdpShardedStrategy(distributedTimeout),
            _ when deviceCount > 1 && deviceType == DeviceType.CUDA => new DdpStrategy(distributedTimeout),
            _ => deviceCount > 1 ? new DataParallelStrategy() : new SingleDeviceStrategy(),
        };
}
