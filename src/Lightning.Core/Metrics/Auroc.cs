using static TorchSharp.torch;

namespace Lightning.Metrics;

/// <summary>
/// The area under the ROC curve, as torchmetrics' <c>AUROC</c>: binary, or multiclass one-vs-rest averaged over the
/// classes (macro). It keeps every score and target (states <c>preds</c>, float64, and <c>target</c>, int64), which
/// "ddp" gathers from every rank before computing.
/// </summary>
/// <remarks>
/// Scores outside [0, 1] are logits: a sigmoid (binary) or a softmax over the classes (multiclass) turns them into
/// probabilities per batch, as torchmetrics does. Tied scores form one point of the curve (trapezoidal area). As
/// torchmetrics, a class with no positive (or no negative) targets scores 0 and still counts in the macro mean.
/// </remarks>
public sealed class Auroc : Metric
{
    /// <summary>Creates the metric.</summary>
    /// <param name="task">Binary or multiclass (one-vs-rest, macro average).</param>
    /// <param name="numClasses">The number of classes: required for multiclass (2 or more), unset for binary.</param>
    public Auroc(MetricTask task, int? numClasses = null) : base($"AUROC ({task.ToString().ToLowerInvariant()})")
    {
        NumClasses = ClassificationInput.NumClasses(Name, task, numClasses);
        Task = task;
        AddState("preds", task == MetricTask.Binary ? zeros(0, ScalarType.Float64) : zeros([0, NumClasses], ScalarType.Float64), StateReduction.Cat);
        AddState("target", zeros(0, ScalarType.Int64), StateReduction.Cat);
    }

    /// <summary>Binary or multiclass.</summary>
    public MetricTask Task { get; }

    /// <summary>The number of classes (2 for binary).</summary>
    public int NumClasses { get; }

    /// <inheritdoc />
    protected override void UpdateState(Tensor preds, Tensor target)
    {
        var (scores, labels) = Task == MetricTask.Binary
            ? ClassificationInput.BinaryScores(Name, preds, target)
            : ClassificationInput.MulticlassScores(Name, preds, target, NumClasses);
        Accumulate("preds", scores);
        Accumulate("target", labels);
    }

    /// <inheritdoc />
    protected override Tensor ComputeValue()
    {
        var scores = State("preds").cpu();
        var labels = State("target").cpu().data<long>().ToArray();
        if (Task == MetricTask.Binary) return tensor(BinaryArea(scores.data<double>().ToArray(), labels.Select(l => l == 1).ToArray()));
        var area = 0.0;
        for (int c = 0; c < NumClasses; c++)
            area += BinaryArea(scores[.., c].contiguous().data<double>().ToArray(), labels.Select(l => l == c).ToArray());
        return tensor(area / NumClasses);
    }

    /// <summary>
    /// The trapezoidal area under the ROC curve of <paramref name="scores"/> against <paramref name="positive"/>, one
    /// point per distinct score from the highest down (ties move both rates at once); 0 without positives or negatives.
    /// </summary>
    private static double BinaryArea(double[] scores, bool[] positive)
    {
        long positives = positive.LongCount(p => p), negatives = positive.Length - positives;
        if (positives == 0 || negatives == 0) return 0;
        var order = Enumerable.Range(0, scores.Length).OrderByDescending(i => scores[i]).ToArray();
        double area = 0;
        long tp = 0, fp = 0, previousTp = 0, previousFp = 0;
        for (int k = 0; k < order.Length; k++)
        {
            if (positive[order[k]]) tp++;
            else fp++;
            if (k + 1 < order.Length && scores[order[k + 1]] == scores[order[k]]) continue;
            area += (fp - previousFp) * (tp + previousTp) / 2.0;
            (previousTp, previousFp) = (tp, fp);
        }
        return area / ((double)positives * negatives);
    }
}
