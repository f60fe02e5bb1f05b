using static TorchSharp.torch;

namespace Lightning.Metrics;

/// <summary>
/// The mean of <c>|preds - target|</c> over every element, as torchmetrics' <c>MeanAbsoluteError</c>; states
/// <c>sum_abs_error</c> (float64) and <c>total</c> (int64).
/// </summary>
public sealed class MeanAbsoluteError : Metric
{
    /// <summary>Creates the metric.</summary>
    public MeanAbsoluteError() : base(nameof(MeanAbsoluteError))
    {
        AddState("sum_abs_error", zeros([], ScalarType.Float64), StateReduction.Sum);
        AddState("total", zeros([], ScalarType.Int64), StateReduction.Sum);
    }

    /// <inheritdoc />
    protected override void UpdateState(Tensor preds, Tensor target)
    {
        var (p, t) = ClassificationInput.Regression(Name, preds, target);
        Accumulate("sum_abs_error", p.sub(t).abs().sum());
        Accumulate("total", tensor(t.numel()));
    }

    /// <inheritdoc />
    protected override Tensor ComputeValue() => State("sum_abs_error").div(State("total").to(ScalarType.Float64));
}
