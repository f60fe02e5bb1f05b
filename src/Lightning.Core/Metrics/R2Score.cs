using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Metrics;

/// <summary>
/// The coefficient of determination <c>1 - Σ(target - preds)² / Σ(target - mean(target))²</c> of one output, as
/// torchmetrics' <c>R2Score</c>; states <c>sum_squared_obs</c>, <c>sum_obs</c>, <c>residual</c> (float64) and
/// <c>total</c> (int64), so the mean of the targets is that of every batch (and rank) together.
/// </summary>
public sealed class R2Score : Metric
{
    /// <summary>Creates the metric.</summary>
    public R2Score() : base(nameof(R2Score))
    {
        foreach (var state in new[] { "sum_squared_obs", "sum_obs", "residual" }) AddState(state, zeros([], ScalarType.Float64), StateReduction.Sum);
        AddState("total", zeros([], ScalarType.Int64), StateReduction.Sum);
    }

    /// <inheritdoc />
    protected override void UpdateState(Tensor preds, Tensor target)
    {
        if (preds.dim() > 1 && preds.shape.Skip(1).Any(d => d != 1))
            throw new ArgumentException($"{Name}: preds has shape {ClassificationInput.Shape(preds)}; it scores one output, so preds and target must be [N] (or [N, 1]).", nameof(preds));
        var (p, t) = ClassificationInput.Regression(Name, preds, target);
        Accumulate("sum_squared_obs", t.square().sum());
        Accumulate("sum_obs", t.sum());
        Accumulate("residual", t.sub(p).square().sum());
        Accumulate("total", tensor(t.numel()));
    }

    /// <inheritdoc />
    protected override Tensor ComputeValue()
    {
        var n = State("total").ToInt64();
        if (n < 2) throw new InvalidOperationException($"{Name} needs at least 2 samples to compute; it has {n}.");
        var sumObs = State("sum_obs");
        var totalSumOfSquares = State("sum_squared_obs").sub(sumObs.square().div(n));
        return 1 - State("residual").div(totalSumOfSquares);
    }
}
