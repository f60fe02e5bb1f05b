using static TorchSharp.torch;

namespace Lightning.Metrics;

/// <summary>
/// Counts of (true class, predicted class) pairs, as torchmetrics' <c>ConfusionMatrix</c>: an int64 [C, C] tensor whose
/// row is the true class and column the predicted one ([2, 2] for binary). Inputs as <see cref="StatScoresMetric"/>.
/// </summary>
/// <remarks>Its value is a matrix, so it cannot be given to <c>Log</c>; compute it in an epoch hook instead.</remarks>
public sealed class ConfusionMatrix : Metric
{
    /// <summary>Creates the metric.</summary>
    /// <param name="task">Binary or multiclass.</param>
    /// <param name="numClasses">The number of classes: required for multiclass (2 or more), unset for binary.</param>
    /// <param name="threshold">Binary probabilities above this count as class 1.</param>
    public ConfusionMatrix(MetricTask task, int? numClasses = null, double threshold = 0.5)
        : base($"{nameof(ConfusionMatrix)} ({task.ToString().ToLowerInvariant()})")
    {
        NumClasses = ClassificationInput.NumClasses(Name, task, numClasses);
        if (!(threshold is >= 0 and <= 1))
            throw new ArgumentOutOfRangeException(nameof(threshold), threshold, $"{Name}: threshold = {threshold} is not allowed: it must be in [0, 1].");
        (Task, Threshold) = (task, threshold);
        AddState("confmat", zeros([NumClasses, NumClasses], ScalarType.Int64), StateReduction.Sum);
    }

    /// <summary>Binary or multiclass.</summary>
    public MetricTask Task { get; }

    /// <summary>The number of classes (2 for binary).</summary>
    public int NumClasses { get; }

    /// <summary>Binary probabilities above this count as class 1.</summary>
    public double Threshold { get; }

    internal override bool IsScalar => false;

    /// <inheritdoc />
    protected override void UpdateState(Tensor preds, Tensor target)
    {
        var (predicted, actual) = Task == MetricTask.Binary
            ? ClassificationInput.BinaryLabels(Name, preds, target, Threshold)
            : ClassificationInput.MulticlassLabels(Name, preds, target, NumClasses);
        Accumulate("confmat", bincount(actual.mul(NumClasses).add(predicted), minlength: NumClasses * NumClasses).reshape(NumClasses, NumClasses));
    }

    /// <inheritdoc />
    protected override Tensor ComputeValue() => State("confmat").clone();
}
