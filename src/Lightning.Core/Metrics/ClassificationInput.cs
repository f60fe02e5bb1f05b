using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Metrics;

/// <summary>
/// Checks and formats classification inputs as torchmetrics does: binary scores outside [0, 1] are logits (sigmoid),
/// multiclass scores outside [0, 1] are logits (softmax); errors name the metric, the value and what is allowed.
/// </summary>
internal static class ClassificationInput
{
    /// <summary>Checks the task's class count: null for binary (2), at least 2 for multiclass.</summary>
    public static int NumClasses(string metric, MetricTask task, int? numClasses)
    {
        if (task == MetricTask.Binary)
        {
            if (numClasses is { } n && n != 2)
                throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, $"{metric}: NumClasses = {n} with task Binary; binary has 2 classes (leave NumClasses unset), or use MetricTask.Multiclass.");
            return 2;
        }
        if (task != MetricTask.Multiclass)
            throw new ArgumentOutOfRangeException(nameof(task), task, $"{metric}: task {task} is not one of [Binary, Multiclass].");
        return numClasses switch
        {
            null => throw new ArgumentNullException(nameof(numClasses), $"{metric}: task Multiclass needs NumClasses (2 or more)."),
            < 2 => throw new ArgumentOutOfRangeException(nameof(numClasses), numClasses, $"{metric}: NumClasses = {numClasses} is not allowed: it must be 2 or more."),
            { } n => n,
        };
    }

    /// <summary>Predicted and true labels (int64, flattened) of a binary batch; probabilities are thresholded with <c>&gt;</c>.</summary>
    public static (Tensor Preds, Tensor Target) BinaryLabels(string metric, Tensor preds, Tensor target, double threshold)
    {
        var labels = BinaryTarget(metric, preds, target);
        if (!preds.is_floating_point())
        {
            CheckLabels(metric, "preds", preds, 2, "0 or 1 (or use probabilities/logits)");
            return (preds.reshape(-1).to(ScalarType.Int64), labels);
        }
        return (Probabilities(preds).reshape(-1).gt(threshold).to(ScalarType.Int64), labels);
    }

    /// <summary>Probabilities of class 1 (float64, flattened) and true labels of a binary batch.</summary>
    public static (Tensor Scores, Tensor Target) BinaryScores(string metric, Tensor preds, Tensor target)
    {
        var labels = BinaryTarget(metric, preds, target);
        if (!preds.is_floating_point())
            throw new ArgumentException($"{metric}: preds has dtype {preds.dtype}; it must hold scores (a floating-point dtype: probabilities or logits).", nameof(preds));
        return (Probabilities(preds).reshape(-1).to(ScalarType.Float64), labels);
    }

    /// <summary>Predicted and true class ids (int64, [N]) of a multiclass batch: ids as given, or the argmax of [N, C] scores.</summary>
    public static (Tensor Preds, Tensor Target) MulticlassLabels(string metric, Tensor preds, Tensor target, int numClasses)
    {
        var labels = MulticlassTarget(metric, preds, target, numClasses);
        if (preds.dim() == 1)
        {
            if (preds.is_floating_point())
                throw new ArgumentException($"{metric}: preds of shape [N] has dtype {preds.dtype}; it must be integer class ids, or [N, {numClasses}] scores.", nameof(preds));
            CheckLabels(metric, "preds", preds, numClasses, $"class ids 0 to {numClasses - 1}");
            return (preds.to(ScalarType.Int64), labels);
        }
        return (preds.argmax(1), labels);
    }

    /// <summary>Class probabilities (float64, [N, C]) and true class ids of a multiclass batch.</summary>
    public static (Tensor Scores, Tensor Target) MulticlassScores(string metric, Tensor preds, Tensor target, int numClasses)
    {
        var labels = MulticlassTarget(metric, preds, target, numClasses);
        if (preds.dim() != 2)
            throw new ArgumentException($"{metric}: preds has shape {Shape(preds)}; it must be [N, {numClasses}] scores (probabilities or logits) for target {Shape(target)}.", nameof(preds));
        var scores = preds.to(ScalarType.Float64);
        return (OutsideUnit(scores) ? scores.softmax(1) : scores, labels);
    }

    /// <summary>Checks regression inputs: the same shape, numbers (not bool); returns both as float64.</summary>
    public static (Tensor Preds, Tensor Target) Regression(string metric, Tensor preds, Tensor target)
    {
        if (!preds.shape.SequenceEqual(target.shape))
            throw new ArgumentException($"{metric}: preds has shape {Shape(preds)} and target {Shape(target)}; they must have the same shape.", nameof(preds));
        foreach (var (what, t) in new[] { ("preds", preds), ("target", target) })
            if (t.dtype == ScalarType.Bool || t.is_complex())
                throw new ArgumentException($"{metric}: {what} has dtype {t.dtype}; it must be a real number type (float or integer).", what);
        return (preds.to(ScalarType.Float64), target.to(ScalarType.Float64));
    }

    public static string Shape(Tensor t) => $"[{string.Join(", ", t.shape)}]";

    private static Tensor BinaryTarget(string metric, Tensor preds, Tensor target)
    {
        if (!preds.shape.SequenceEqual(target.shape))
            throw new ArgumentException($"{metric}: preds has shape {Shape(preds)} and target {Shape(target)}; for a binary task they must have the same shape.", nameof(preds));
        RequireIntegerTarget(metric, target);
        CheckLabels(metric, "target", target, 2, "0 or 1");
        return target.reshape(-1).to(ScalarType.Int64);
    }

    private static Tensor MulticlassTarget(string metric, Tensor preds, Tensor target, int numClasses)
    {
        if (target.dim() != 1)
            throw new ArgumentException($"{metric}: target has shape {Shape(target)}; it must be [N] class ids.", nameof(target));
        RequireIntegerTarget(metric, target);
        var n = target.shape[0];
        var shapeOk = preds.dim() switch
        {
            1 => preds.shape[0] == n,
            2 => preds.shape[0] == n && preds.shape[1] == numClasses,
            _ => false,
        };
        if (!shapeOk)
            throw new ArgumentException(
                $"{metric}: preds has shape {Shape(preds)} and target {Shape(target)}; preds must be [{n}] class ids or [{n}, {numClasses}] scores (NumClasses = {numClasses}).", nameof(preds));
        if (preds.dim() == 2 && !preds.is_floating_point())
            throw new ArgumentException($"{metric}: preds of shape {Shape(preds)} has dtype {preds.dtype}; scores must be a floating-point dtype.", nameof(preds));
        CheckLabels(metric, "target", target, numClasses, $"class ids 0 to {numClasses - 1} (NumClasses = {numClasses})");
        return target.to(ScalarType.Int64);
    }

    private static void RequireIntegerTarget(string metric, Tensor target)
    {
        if (target.is_floating_point() || target.is_complex())
            throw new ArgumentException($"{metric}: target has dtype {target.dtype}; it must be an integer dtype (e.g. int64) holding class labels.", nameof(target));
    }

    /// <summary>Throws when <paramref name="labels"/> holds a value outside 0..<paramref name="count"/>-1, naming the first one.</summary>
    private static void CheckLabels(string metric, string what, Tensor labels, int count, string allowed)
    {
        if (labels.numel() == 0) return;
        var wide = labels.to(ScalarType.Int64);
        var bad = wide.lt(0).logical_or(wide.ge(count));
        if (!bad.any().ToBoolean()) return;
        var value = wide.masked_select(bad)[0].ToInt64();
        throw new ArgumentOutOfRangeException(what, value, $"{metric}: {what} holds {value}; allowed are {allowed}.");
    }

    private static Tensor Probabilities(Tensor preds) => OutsideUnit(preds) ? preds.sigmoid() : preds;

    private static bool OutsideUnit(Tensor scores) => scores.numel() > 0 && scores.lt(0).logical_or(scores.gt(1)).any().ToBoolean();
}
