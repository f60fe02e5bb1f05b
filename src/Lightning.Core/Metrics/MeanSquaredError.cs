using static TorchSharp.torch;

namespace Lightning.Metrics;

/// <summary>
/// The mean of <c>(preds - target)²</c> over every element, as torchmetrics' <c>MeanSquaredError</c>; states
/// <c>sum_squared_error</c> (float64) and <c>total</c> (int64).
/// </summary>
public sealed class MeanSquaredError : Metric
{
    /// <summary>Creates the metric.</summary>
    public MeanSquaredError() : base(nameof(MeanSquaredError))
    {
        AddState("sum_squared_error", zeros([], ScalarType.Float64), StateReduction.Sum);
        AddState("total", zeros([], ScalarType.Int64), StateReduction.Sum);
    }

    /// <inheritdoc />
    protected override void UpdateState(Tensor preds, Tensor target)
    {
        var (p, t) = ClassificationInput.Regression(Name, preds, target);
        Accumulate("sum_squared_error", p.sub(t).square().sum());
        Accumulate("total", tensor(t.numel()));
    }

    /// <inheritdoc />
    protected override Tensor ComputeValue() => State("sum_squared_error").div(State("total").to(ScalarType.Float64));
}
