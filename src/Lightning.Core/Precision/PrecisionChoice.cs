using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Precision;

/// <summary>
/// A precision setting (Lightning's <c>precision</c>): a name, or a <see cref="PrecisionPlugin"/> of your own. Strings and
/// plugins convert implicitly, so <c>Precision = "bf16-mixed"</c> and <c>Precision = new MyPrecision()</c> both work.
/// A name gives every trainer a fresh plugin; a plugin instance is used as it is.
/// </summary>
public readonly record struct PrecisionChoice
{
    /// <summary>The names and their aliases, as error messages list them.</summary>
    internal const string Allowed = "\"32-true\" (32), \"64-true\" (64), \"16-true\", \"bf16-true\", \"16-mixed\" (16), \"bf16-mixed\" (\"bf16\")";

    private PrecisionChoice(string? name, PrecisionPlugin? plugin) => (Name, Plugin) = (name, plugin);

    /// <summary>The name given, or null when a plugin was.</summary>
    public string? Name { get; }

    /// <summary>The plugin given, or null when a name was.</summary>
    public PrecisionPlugin? Plugin { get; }

    /// <summary>A built-in precision by name or alias.</summary>
    public static implicit operator PrecisionChoice(string name) =>
        new(name ?? throw new ArgumentNullException("Precision", $"Precision = null is not allowed: use one of {Allowed}, or a PrecisionPlugin instance."), null);

    /// <summary>Your own precision plugin.</summary>
    public static implicit operator PrecisionChoice(PrecisionPlugin plugin) =>
        new(null, plugin ?? throw new ArgumentNullException("Precision", $"Precision = null is not allowed: use one of {Allowed}, or a PrecisionPlugin instance."));

    /// <inheritdoc />
    public override string ToString() => Plugin?.Name ?? Name ?? "32-true";

    /// <summary>The canonical name of the choice; an unknown name fails naming the allowed ones.</summary>
    internal string Validate() => Plugin?.Name ?? Canonical(Name ?? "32-true");

    /// <summary>
    /// The plugin for a run on <paramref name="device"/>: the given one, or a fresh built-in one (the name was validated
    /// with the options). Float16 mixed precision needs CUDA and falls back to bfloat16 on the CPU, as Lightning does.
    /// </summary>
    internal PrecisionPlugin Create(DeviceType device, Action<string> warn) => Plugin ?? Canonical(Name ?? "32-true") switch
    {
        "32-true" => new TruePrecision("32-true", null),
        "64-true" => new TruePrecision("64-true", ScalarType.Float64),
        "16-true" => new TruePrecision("16-true", ScalarType.Float16),
        "bf16-true" => new TruePrecision("bf16-true", ScalarType.BFloat16),
        "16-mixed" when device != DeviceType.CUDA => FallBackToBf16(device, warn),
        "16-mixed" => new MixedPrecision(device, ScalarType.Float16, new GradScaler()),
        _ => new MixedPrecision(device, ScalarType.BFloat16, null),
    };

    private static MixedPrecision FallBackToBf16(DeviceType device, Action<string> warn)
    {
        warn("Precision \"16-mixed\" needs a CUDA device; on the CPU it runs as \"bf16-mixed\" instead.");
        return new MixedPrecision(device, ScalarType.BFloat16, null);
    }

    private static string Canonical(string precision) => precision switch
    {
        "32" or "32-true" => "32-true",
        "64" or "64-true" => "64-true",
        "16-true" => "16-true",
        "bf16-true" => "bf16-true",
        "16" or "16-mixed" => "16-mixed",
        "bf16" or "bf16-mixed" => "bf16-mixed",
        _ => throw new ArgumentOutOfRangeException("Precision", precision, $"Precision = \"{precision}\" is not allowed: use one of {Allowed}."),
    };
}
