using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Precision;

/// <summary>
/// Float32 weights with libtorch autocast around each step (Lightning's <c>MixedPrecision</c>); float16 adds loss
/// scaling: the loss is scaled before backward, gradients are unscaled before the hooks and clipping see them, and a
/// step whose gradients overflowed is skipped and the scale cut.
/// </summary>
internal sealed class MixedPrecision(DeviceType device, ScalarType dtype, GradScaler? scaler) : PrecisionPlugin
{
    public override string Name => dtype == ScalarType.Float16 ? "16-mixed" : "bf16-mixed";

    public override IDisposable ForwardContext() => Autocast.Enable(device, dtype);

    public override Tensor PreBackward(Tensor loss) => scaler?.ScaleLoss(loss) ?? loss;

    public override void UnscaleGradients(optim.Optimizer optimizer)
    {
        if (scaler is not null && !scaler.HasUnscaled(optimizer)) scaler.Unscale(optimizer);
    }

    public override OptimizerStepOutcome OptimizerStep(optim.Optimizer optimizer, Func<Tensor?>? closure, Action? beforeStep)
    {
        if (scaler is null) return base.OptimizerStep(optimizer, closure, beforeStep);
        if (closure is not null && closure() is null) return OptimizerStepOutcome.NoLoss;
        // Hooks and clipping see true gradients; the scaler then steps unless they overflowed.
        UnscaleGradients(optimizer);
        beforeStep?.Invoke();
        var stepped = scaler.Step(optimizer);
        scaler.Update();
        return stepped ? OptimizerStepOutcome.Stepped : OptimizerStepOutcome.SkippedOnOverflow;
    }

    internal override void AgreeOnOverflow(Func<bool, bool> agree)
    {
        if (scaler is not null) scaler.AgreeOnOverflow = agree;
    }

    public override JsonObject? SaveState() => scaler?.SaveState();

    public override void LoadState(JsonObject state) => scaler?.LoadState(state);
}
