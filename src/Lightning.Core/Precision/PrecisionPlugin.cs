using TorchSharp;
using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace Lightning.Precision;

/// <summary>
/// What a precision setting does to a run (Lightning's precision plugins): the dtype of the weights and inputs
/// (<c>*-true</c>), an autocast context around every step and, for float16, loss scaling (<c>*-mixed</c>).
/// The Trainer and Fabric share these.
/// </summary>
internal abstract class PrecisionPlugin
{
    public const string Allowed = "\"32-true\" (32), \"64-true\" (64), \"16-true\", \"bf16-true\", \"16-mixed\" (16), \"bf16-mixed\" (\"bf16\")";

    /// <summary>The canonical name, e.g. "bf16-mixed".</summary>
    public abstract string Name { get; }

    /// <summary>The dtype weights and floating inputs are cast to, or null to leave them.</summary>
    public virtual ScalarType? Dtype => null;

    /// <summary>The loss scaler, for float16 mixed precision.</summary>
    public virtual GradScaler? Scaler => null;

    /// <summary>Scope around each step's forward (autocast for mixed precision).</summary>
    public virtual IDisposable? ForwardContext() => null;

    /// <summary>The name under which checkpoints keep this plugin's state (Lightning's class name key).</summary>
    public virtual string StateKey => GetType().Name;

    public virtual JsonObject? SaveState() => null;
    public virtual void LoadState(JsonObject state) { }

    /// <summary>Canonical name of a precision value, or an error naming the allowed values.</summary>
    public static string Canonical(string precision) => precision switch
    {
        "32" or "32-true" => "32-true",
        "64" or "64-true" => "64-true",
        "16-true" => "16-true",
        "bf16-true" => "bf16-true",
        "16" or "16-mixed" => "16-mixed",
        "bf16" or "bf16-mixed" => "bf16-mixed",
        _ => throw new ArgumentOutOfRangeException("Precision", precision,
            $"Precision = \"{precision}\" is not allowed: use one of {Allowed}."),
    };

    /// <summary>The plugin for <paramref name="precision"/> on <paramref name="device"/>; float16 mixed precision needs CUDA and falls back to bfloat16 on the CPU, as Lightning does.</summary>
    public static PrecisionPlugin Create(string precision, DeviceType device, Action<string> warn) => Canonical(precision) switch
    {
        "32-true" => new TruePrecision("32-true", null),
        "64-true" => new TruePrecision("64-true", ScalarType.Float64),
        "16-true" => new TruePrecision("16-true", ScalarType.Float16),
        "bf16-true" => new TruePrecision("bf16-true", ScalarType.BFloat16),
        "16-mixed" when device != DeviceType.CUDA => Warn(warn, new MixedPrecision(device, ScalarType.BFloat16, null)),
        "16-mixed" => new MixedPrecision(device, ScalarType.Float16, new GradScaler()),
        _ => new MixedPrecision(device, ScalarType.BFloat16, null),
    };

    private static PrecisionPlugin Warn(Action<string> warn, PrecisionPlugin plugin)
    {
        warn("Precision \"16-mixed\" needs a CUDA device; on the CPU it runs as \"bf16-mixed\" instead.");
        return plugin;
    }

    private sealed class TruePrecision(string name, ScalarType? dtype) : PrecisionPlugin
    {
        public override string Name => name;
        public override ScalarType? Dtype => dtype;
    }

    private sealed class MixedPrecision(DeviceType device, ScalarType dtype, GradScaler? scaler) : PrecisionPlugin
    {
        public override string Name => dtype == ScalarType.Float16 ? "16-mixed" : "bf16-mixed";
        public override GradScaler? Scaler => scaler;
        public override IDisposable ForwardContext() => Autocast.Enable(device, dtype);
        public override JsonObject? SaveState() => scaler?.SaveState();
        public override void LoadState(JsonObject state) => scaler?.LoadState(state);
    }
}
