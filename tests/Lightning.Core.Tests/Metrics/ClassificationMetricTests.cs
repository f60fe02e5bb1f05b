using Lightning.Metrics;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Metrics;

/// <summary>
/// Accuracy, Precision, Recall, F1Score and ConfusionMatrix against published examples (torchmetrics' and
/// scikit-learn's documentation, their printed results quoted) and small cases counted by hand.
/// </summary>
public class ClassificationMetricTests
{
    private static double Value(Metric metric, Tensor preds, Tensor target)
    {
        metric.Update(preds, target);
        return metric.Compute().ToDouble();
    }

    // torchmetrics BinaryAccuracy/BinaryPrecision/BinaryRecall/BinaryF1Score docs:
    //   target = tensor([0, 1, 0, 1, 0, 1]); preds = tensor([0, 0, 1, 1, 0, 1])  ->  tensor(0.6667) for each.
    // By hand: tp = 2, fp = 1, tn = 2, fn = 1: accuracy 4/6, precision 2/3, recall 2/3, F1 4/6.
    [Fact]
    public void Binary_TorchmetricsDocExample_Labels()
    {
        using var target = tensor(new long[] { 0, 1, 0, 1, 0, 1 });
        using var preds = tensor(new long[] { 0, 0, 1, 1, 0, 1 });
        Assert.Equal(4.0 / 6, Value(new Accuracy(MetricTask.Binary), preds, target), 12);
        Assert.Equal(2.0 / 3, Value(new Lightning.Metrics.Precision(MetricTask.Binary), preds, target), 12);
        Assert.Equal(2.0 / 3, Value(new Recall(MetricTask.Binary), preds, target), 12);
        Assert.Equal(2.0 / 3, Value(new F1Score(MetricTask.Binary), preds, target), 12);
    }

    // torchmetrics BinaryAccuracy docs, probabilities: preds = tensor([0.11, 0.22, 0.84, 0.73, 0.33, 0.92]) -> tensor(0.6667).
    [Fact]
    public void Binary_Probabilities_AreThresholdedAtHalf()
    {
        using var target = tensor(new long[] { 0, 1, 0, 1, 0, 1 });
        using var preds = tensor(new[] { 0.11f, 0.22f, 0.84f, 0.73f, 0.33f, 0.92f });
        Assert.Equal(4.0 / 6, Value(new Accuracy(MetricTask.Binary), preds, target), 6);
        // A higher threshold: only 0.92 counts as 1 -> tp 1, fp 0, fn 2, tn 3.
        Assert.Equal(4.0 / 6, Value(new Accuracy(MetricTask.Binary, threshold: 0.9), preds, target), 6);
        Assert.Equal(1.0, Value(new Lightning.Metrics.Precision(MetricTask.Binary, threshold: 0.9), preds, target), 6);
        Assert.Equal(1.0 / 3, Value(new Recall(MetricTask.Binary, threshold: 0.9), preds, target), 6);
    }

    // Logits (values outside [0, 1]) go through a sigmoid first: -1 -> 0.27, 2 -> 0.88, 0.3 -> 0.57, -0.2 -> 0.45, i.e. labels 0 1 1 0.
    // A threshold on the raw values would call 0.3 a 0 instead: the result below then differs (3/4 instead of 1).
    [Fact]
    public void Binary_Logits_GoThroughSigmoid()
    {
        using var target = tensor(new long[] { 0, 1, 1, 0 });
        using var preds = tensor(new[] { -1f, 2f, 0.3f, -0.2f });
        Assert.Equal(1.0, Value(new Accuracy(MetricTask.Binary), preds, target), 12);
    }

    // torchmetrics MulticlassAccuracy/Precision/Recall/F1Score docs: target = tensor([2, 1, 0, 0]); preds = tensor([2, 1, 0, 1]),
    // num_classes=3, average="macro": accuracy tensor(0.8333), precision tensor(0.8333), recall tensor(0.8333), F1 tensor(0.7778)
    // (per class, average=None: accuracy/recall [0.5, 1, 1], precision [1, 0.5, 1], F1 [0.6667, 0.6667, 1]).
    // Micro (by hand): 3 of 4 right -> 0.75 for all four.
    [Fact]
    public void Multiclass_TorchmetricsDocExample_MicroAndMacro()
    {
        using var target = tensor(new long[] { 2, 1, 0, 0 });
        using var preds = tensor(new long[] { 2, 1, 0, 1 });
        Assert.Equal(2.5 / 3, Value(new Accuracy(MetricTask.Multiclass, 3, MetricAverage.Macro), preds, target), 12);
        Assert.Equal(2.5 / 3, Value(new Lightning.Metrics.Precision(MetricTask.Multiclass, 3, MetricAverage.Macro), preds, target), 12);
        Assert.Equal(2.5 / 3, Value(new Recall(MetricTask.Multiclass, 3, MetricAverage.Macro), preds, target), 12);
        Assert.Equal((2.0 / 3 + 2.0 / 3 + 1) / 3, Value(new F1Score(MetricTask.Multiclass, 3, MetricAverage.Macro), preds, target), 12);
        foreach (var metric in new Metric[] { new Accuracy(MetricTask.Multiclass, 3), new Lightning.Metrics.Precision(MetricTask.Multiclass, 3), new Recall(MetricTask.Multiclass, 3), new F1Score(MetricTask.Multiclass, 3) })
            Assert.Equal(0.75, Value(metric, preds, target), 12);
    }

    // torchmetrics MulticlassAccuracy docs, scores: preds = [[.16, .26, .58], [.22, .61, .17], [.71, .09, .20], [.05, .82, .13]] -> tensor(0.8333).
    [Fact]
    public void Multiclass_Scores_TakeTheArgmax()
    {
        using var target = tensor(new long[] { 2, 1, 0, 0 });
        using var preds = tensor(new[] { 0.16f, 0.26f, 0.58f, 0.22f, 0.61f, 0.17f, 0.71f, 0.09f, 0.20f, 0.05f, 0.82f, 0.13f }).reshape(4, 3);
        Assert.Equal(2.5 / 3, Value(new Accuracy(MetricTask.Multiclass, 3, MetricAverage.Macro), preds, target), 12);
    }

    // scikit-learn precision_score/recall_score/f1_score docs: y_true = [0, 1, 2, 0, 1, 2]; y_pred = [0, 2, 1, 0, 0, 1]:
    //   precision macro 0.22..., micro 0.33...; recall macro 0.33..., micro 0.33...; f1 macro 0.26..., micro 0.33...
    // scikit-learn accuracy_score docs: y_pred = [0, 2, 1, 3]; y_true = [0, 1, 2, 3] -> 0.5.
    [Fact]
    public void Multiclass_ScikitLearnDocExamples()
    {
        using var target = tensor(new long[] { 0, 1, 2, 0, 1, 2 });
        using var preds = tensor(new long[] { 0, 2, 1, 0, 0, 1 });
        Assert.Equal(2.0 / 9, Value(new Lightning.Metrics.Precision(MetricTask.Multiclass, 3, MetricAverage.Macro), preds, target), 12);
        Assert.Equal(1.0 / 3, Value(new Lightning.Metrics.Precision(MetricTask.Multiclass, 3), preds, target), 12);
        Assert.Equal(1.0 / 3, Value(new Recall(MetricTask.Multiclass, 3, MetricAverage.Macro), preds, target), 12);
        Assert.Equal(1.0 / 3, Value(new Recall(MetricTask.Multiclass, 3), preds, target), 12);
        Assert.Equal(0.8 / 3, Value(new F1Score(MetricTask.Multiclass, 3, MetricAverage.Macro), preds, target), 12);
        Assert.Equal(1.0 / 3, Value(new F1Score(MetricTask.Multiclass, 3), preds, target), 12);

        using var t2 = tensor(new long[] { 0, 1, 2, 3 });
        using var p2 = tensor(new long[] { 0, 2, 1, 3 });
        Assert.Equal(0.5, Value(new Accuracy(MetricTask.Multiclass, 4), p2, t2), 12);
    }

    // Macro leaves out a class absent from targets and predictions (torchmetrics' weights): with 4 classes and class 3 never
    // seen, the macro recall of the doc example above stays 0.8333 instead of dropping to 2.5 / 4.
    [Fact]
    public void Macro_IgnoresClassesNeverSeen()
    {
        using var target = tensor(new long[] { 2, 1, 0, 0 });
        using var preds = tensor(new long[] { 2, 1, 0, 1 });
        Assert.Equal(2.5 / 3, Value(new Recall(MetricTask.Multiclass, 4, MetricAverage.Macro), preds, target), 12);
    }

    // Counts accumulate over batches: the doc example split in two batches gives the same values as in one.
    [Fact]
    public void Updates_AccumulateOverBatches_AndResetStartsOver()
    {
        var f1 = new F1Score(MetricTask.Multiclass, 3, MetricAverage.Macro);
        f1.Update(tensor(new long[] { 2, 1 }), tensor(new long[] { 2, 1 }));
        f1.Update(tensor(new long[] { 0, 1 }), tensor(new long[] { 0, 0 }));
        Assert.Equal((2.0 / 3 + 2.0 / 3 + 1) / 3, f1.Compute().ToDouble(), 12);
        Assert.Equal(new long[] { 1, 1, 1 }, f1.States["tp"].data<long>().ToArray());
        Assert.Equal(new long[] { 0, 1, 0 }, f1.States["fp"].data<long>().ToArray());
        Assert.Equal(new long[] { 1, 0, 0 }, f1.States["fn"].data<long>().ToArray());
        Assert.Equal(new long[] { 2, 2, 3 }, f1.States["tn"].data<long>().ToArray());

        f1.Reset();
        Assert.All(f1.States.Values, s => Assert.Equal(0, s.sum().ToInt64()));
        f1.Update(tensor(new long[] { 0 }), tensor(new long[] { 0 }));
        Assert.Equal(1.0, f1.Compute().ToDouble(), 12);
    }

    // Forward returns the batch's own value and still accumulates (torchmetrics' forward).
    [Fact]
    public void Forward_ReturnsTheBatchValue_AndAccumulates()
    {
        var accuracy = new Accuracy(MetricTask.Multiclass, 3);
        Assert.Equal(1.0, accuracy.Forward(tensor(new long[] { 2, 1 }), tensor(new long[] { 2, 1 })).ToDouble(), 12);
        Assert.Equal(0.5, accuracy.Forward(tensor(new long[] { 0, 1 }), tensor(new long[] { 0, 0 })).ToDouble(), 12);
        Assert.Equal(0.5, accuracy.BatchValue);
        Assert.Equal(0.75, accuracy.Compute().ToDouble(), 12);
        accuracy.Update(tensor(new long[] { 0 }), tensor(new long[] { 0 }));
        Assert.Null(accuracy.BatchValue);
    }

    // torchmetrics BinaryConfusionMatrix docs: target = tensor([1, 1, 0, 0]); preds = tensor([0, 1, 0, 0]) -> [[2, 0], [1, 1]].
    // torchmetrics MulticlassConfusionMatrix docs: target = tensor([2, 1, 0, 0]); preds = tensor([2, 1, 0, 1]) -> [[1, 1, 0], [0, 1, 0], [0, 0, 1]].
    // scikit-learn confusion_matrix docs: y_true = [2, 0, 2, 2, 0, 1]; y_pred = [0, 0, 2, 2, 0, 2] -> [[2, 0, 0], [0, 0, 1], [1, 0, 2]].
    [Fact]
    public void ConfusionMatrix_DocExamples()
    {
        var binary = new ConfusionMatrix(MetricTask.Binary);
        binary.Update(tensor(new long[] { 0, 1, 0, 0 }), tensor(new long[] { 1, 1, 0, 0 }));
        Assert.Equal(new long[] { 2, 0, 1, 1 }, binary.Compute().data<long>().ToArray());

        var multiclass = new ConfusionMatrix(MetricTask.Multiclass, 3);
        multiclass.Update(tensor(new long[] { 2, 1, 0, 1 }), tensor(new long[] { 2, 1, 0, 0 }));
        Assert.Equal(new long[] { 1, 1, 0, 0, 1, 0, 0, 0, 1 }, multiclass.Compute().data<long>().ToArray());

        var sklearn = new ConfusionMatrix(MetricTask.Multiclass, 3);
        sklearn.Update(tensor(new long[] { 0, 0, 2 }), tensor(new long[] { 2, 0, 2 }));
        sklearn.Update(tensor(new long[] { 2, 0, 2 }), tensor(new long[] { 2, 0, 1 }));
        using var matrix = sklearn.Compute();
        Assert.Equal(new long[] { 3, 3 }, matrix.shape);
        Assert.Equal(new long[] { 2, 0, 0, 0, 0, 1, 1, 0, 2 }, matrix.data<long>().ToArray());
    }
}
