using static TorchSharp.torch;

namespace Lightning.Metrics;

/// <summary>
/// The harmonic mean of precision and recall, <c>2tp / (2tp + fp + fn)</c>, as torchmetrics' <c>F1Score</c> (binary,
/// or multiclass micro/macro; 0 when the denominator is 0).
/// </summary>
public sealed class F1Score : StatScoresMetric
{
    /// <summary>Creates the metric; see <see cref="StatScoresMetric"/> for the inputs it takes.</summary>
    /// <param name="task">Binary or multiclass.</param>
    /// <param name="numClasses">The number of classes: required for multiclass (2 or more), unset for binary.</param>
    /// <param name="average">Micro (default) or macro, for multiclass.</param>
    /// <param name="threshold">Binary probabilities above this count as class 1.</param>
    public F1Score(MetricTask task, int? numClasses = null, MetricAverage average = MetricAverage.Micro, double threshold = 0.5)
        : base(nameof(F1Score), task, numClasses, average, threshold) { }

    private protected override Tensor Score(Tensor tp, Tensor fp, Tensor tn, Tensor fn) => SafeDivide(tp.mul(2), tp.mul(2).add(fp).add(fn));
}
