using static TorchSharp.torch;

namespace Lightning.Metrics;

/// <summary>
/// The share of predicted positives that are right, <c>tp / (tp + fp)</c>, as torchmetrics' <c>Precision</c> (binary,
/// or multiclass micro/macro; 0 when nothing is predicted positive).
/// </summary>
public sealed class Precision : StatScoresMetric
{
    /// <summary>Creates the metric; see <see cref="StatScoresMetric"/> for the inputs it takes.</summary>
    /// <param name="task">Binary or multiclass.</param>
    /// <param name="numClasses">The number of classes: required for multiclass (2 or more), unset for binary.</param>
    /// <param name="average">Micro (default) or macro, for multiclass.</param>
    /// <param name="threshold">Binary probabilities above this count as class 1.</param>
    public Precision(MetricTask task, int? numClasses = null, MetricAverage average = MetricAverage.Micro, double threshold = 0.5)
        : base(nameof(Precision), task, numClasses, average, threshold) { }

    private protected override Tensor Score(Tensor tp, Tensor fp, Tensor tn, Tensor fn) => SafeDivide(tp, tp.add(fp));
}
