using static TorchSharp.torch;

namespace Lightning.Metrics;

/// <summary>
/// The share of correct predictions, as torchmetrics' <c>Accuracy</c>: binary <c>(tp + tn) / all</c>; multiclass micro
/// <c>Σtp / N</c>; multiclass macro the mean over classes of <c>tp / (tp + fn)</c> (per-class recall).
/// </summary>
/// <example><code>
/// var accuracy = new Accuracy(MetricTask.Multiclass, numClasses: 10);
/// accuracy.Update(logits, labels);      // per batch
/// double value = accuracy.Compute().ToDouble();
/// </code></example>
public sealed class Accuracy : StatScoresMetric
{
    /// <summary>Creates the metric; see <see cref="StatScoresMetric"/> for the inputs it takes.</summary>
    /// <param name="task">Binary or multiclass.</param>
    /// <param name="numClasses">The number of classes: required for multiclass (2 or more), unset for binary.</param>
    /// <param name="average">Micro (default, as torchmetrics' <c>Accuracy</c>) or macro, for multiclass.</param>
    /// <param name="threshold">Binary probabilities above this count as class 1.</param>
    public Accuracy(MetricTask task, int? numClasses = null, MetricAverage average = MetricAverage.Micro, double threshold = 0.5)
        : base(nameof(Accuracy), task, numClasses, average, threshold) { }

    private protected override Tensor Score(Tensor tp, Tensor fp, Tensor tn, Tensor fn) =>
        Task == MetricTask.Binary ? SafeDivide(tp.add(tn), tp.add(tn).add(fp).add(fn)) : SafeDivide(tp, tp.add(fn));

    private protected override Tensor MicroScore(Tensor tp, Tensor fp, Tensor tn, Tensor fn) => SafeDivide(tp, tp.add(fn));
}
