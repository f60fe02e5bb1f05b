using static TorchSharp.torch;

namespace Lightning.Metrics;

/// <summary>
/// The share of actual positives that are found, <c>tp / (tp + fn)</c>, as torchmetrics' <c>Recall</c> (binary, or
/// multiclass micro/macro; 0 when there are no positives).
/// </summary>
public sealed class Recall : StatScoresMetric
{
    /// <summary>Creates the metric; see <see cref="StatScoresMetric"/> for the inputs it takes.</summary>
    /// <param name="task">Binary or multiclass.</param>
    /// <param name="numClasses">The number of classes: required for multiclass (2 or more), unset for binary.</param>
    /// <param name="average">Micro (default) or macro, for multiclass.</param>
    /// <param name="threshold">Binary probabilities above this count as class 1.</param>
    public Recall(MetricTask task, int? numClasses = null, MetricAverage average = MetricAverage.Micro, double threshold = 0.5)
        : base(nameof(Recall), task, numClasses, average, threshold) { }

    private protected override Tensor Score(Tensor tp, Tensor fp, Tensor tn, Tensor fn) => SafeDivide(tp, tp.add(fn));
}
