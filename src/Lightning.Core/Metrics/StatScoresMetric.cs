using static TorchSharp.torch;

namespace Lightning.Metrics;

/// <summary>
/// The base of <see cref="Accuracy"/>, <see cref="Precision"/>, <see cref="Recall"/> and <see cref="F1Score"/>: as
/// torchmetrics' stat-score metrics it keeps true/false positive/negative counts (<c>tp</c>, <c>fp</c>, <c>tn</c>,
/// <c>fn</c>; int64, one per class for multiclass) and scores them with <see cref="Average"/>.
/// </summary>
/// <remarks>
/// Binary predictions are labels (0/1), probabilities, or logits (any value outside [0, 1] turns the batch into
/// probabilities with a sigmoid); a probability counts as class 1 when it is above <see cref="Threshold"/>. Multiclass
/// predictions are class ids ([N]) or one score per class ([N, C], the highest wins). A score whose denominator is 0
/// is 0; a macro average leaves out classes absent from both targets and predictions.
/// </remarks>
public abstract class StatScoresMetric : Metric
{
    private protected StatScoresMetric(string metric, MetricTask task, int? numClasses, MetricAverage average, double threshold)
        : base($"{metric} ({task.ToString().ToLowerInvariant()})")
    {
        NumClasses = ClassificationInput.NumClasses(Name, task, numClasses);
        if (average is not (MetricAverage.Micro or MetricAverage.Macro))
            throw new ArgumentOutOfRangeException(nameof(average), average, $"{Name}: average {average} is not one of [Micro, Macro].");
        if (!(threshold is >= 0 and <= 1))
            throw new ArgumentOutOfRangeException(nameof(threshold), threshold, $"{Name}: threshold = {threshold} is not allowed: it must be in [0, 1].");
        (Task, Average, Threshold) = (task, average, threshold);
        long[] shape = task == MetricTask.Binary ? [] : [NumClasses];
        foreach (var state in new[] { "tp", "fp", "tn", "fn" }) AddState(state, zeros(shape, ScalarType.Int64), StateReduction.Sum);
    }

    /// <summary>Binary or multiclass.</summary>
    public MetricTask Task { get; }

    /// <summary>The number of classes (2 for binary).</summary>
    public int NumClasses { get; }

    /// <summary>How multiclass per-class scores become one value (binary has one score).</summary>
    public MetricAverage Average { get; }

    /// <summary>Binary probabilities above this count as class 1.</summary>
    public double Threshold { get; }

    /// <inheritdoc />
    protected override void UpdateState(Tensor preds, Tensor target)
    {
        if (Task == MetricTask.Binary)
        {
            var (p, t) = ClassificationInput.BinaryLabels(Name, preds, target, Threshold);
            Accumulate("tp", p.mul(t).sum());
            Accumulate("fp", p.mul(1 - t).sum());
            Accumulate("tn", (1 - p).mul(1 - t).sum());
            Accumulate("fn", (1 - p).mul(t).sum());
            return;
        }
        var (predicted, actual) = ClassificationInput.MulticlassLabels(Name, preds, target, NumClasses);
        // Rows: true class, columns: predicted class.
        var confusion = bincount(actual.mul(NumClasses).add(predicted), minlength: NumClasses * NumClasses).reshape(NumClasses, NumClasses);
        var tp = confusion.diagonal();
        // dim named: a literal 0 would bind to the sum(ScalarType) overload.
        var fp = confusion.sum(dim: 0).sub(tp);
        var fn = confusion.sum(dim: 1).sub(tp);
        Accumulate("tp", tp);
        Accumulate("fp", fp);
        Accumulate("fn", fn);
        Accumulate("tn", full(NumClasses, actual.shape[0], ScalarType.Int64, device: tp.device).sub(tp).sub(fp).sub(fn));
    }

    /// <inheritdoc />
    protected override Tensor ComputeValue()
    {
        var (tp, fp, tn, fn) = (Counts("tp"), Counts("fp"), Counts("tn"), Counts("fn"));
        if (Task == MetricTask.Binary) return Score(tp, fp, tn, fn);
        if (Average == MetricAverage.Micro) return MicroScore(tp.sum(), fp.sum(), tn.sum(), fn.sum());
        var scores = Score(tp, fp, tn, fn);
        // torchmetrics' macro weights: classes never seen in targets nor predictions do not count.
        var weights = tp.add(fp).add(fn).gt(0).to(ScalarType.Float64);
        return SafeDivide(scores.mul(weights).sum(), weights.sum());
    }

    /// <summary>The score per class (or of the binary counts), from float64 counts.</summary>
    private protected abstract Tensor Score(Tensor tp, Tensor fp, Tensor tn, Tensor fn);

    /// <summary>The micro score from counts summed over classes; differs from <see cref="Score"/> only for accuracy.</summary>
    private protected virtual Tensor MicroScore(Tensor tp, Tensor fp, Tensor tn, Tensor fn) => Score(tp, fp, tn, fn);

    /// <summary>Numerator over denominator, 0 where the denominator is 0 (torchmetrics' <c>zero_division=0</c>).</summary>
    private protected static Tensor SafeDivide(Tensor numerator, Tensor denominator) =>
        where(denominator.eq(0), zeros_like(numerator), numerator.div(where(denominator.eq(0), ones_like(denominator), denominator)));

    private Tensor Counts(string name) => State(name).to(ScalarType.Float64);
}
