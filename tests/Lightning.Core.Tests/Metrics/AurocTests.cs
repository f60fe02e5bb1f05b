using Lightning.Metrics;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Metrics;

/// <summary>Auroc against torchmetrics' and scikit-learn's documentation examples and hand-computed ROC areas.</summary>
public class AurocTests
{
    // torchmetrics BinaryAUROC docs: preds = tensor([0, 0.5, 0.7, 0.8]); target = tensor([0, 1, 1, 0]) -> tensor(0.5000).
    // scikit-learn auc docs: y = [1, 1, 2, 2] (positive 2); pred = [0.1, 0.4, 0.35, 0.8] -> roc_curve, auc = 0.75.
    [Fact]
    public void Binary_DocExamples()
    {
        var auroc = new Auroc(MetricTask.Binary);
        auroc.Update(tensor(new[] { 0f, 0.5f, 0.7f, 0.8f }), tensor(new long[] { 0, 1, 1, 0 }));
        Assert.Equal(0.5, auroc.Compute().ToDouble(), 12);

        auroc.Reset();
        auroc.Update(tensor(new[] { 0.1f, 0.4f }), tensor(new long[] { 0, 0 }));
        auroc.Update(tensor(new[] { 0.35f, 0.8f }), tensor(new long[] { 1, 1 }));
        Assert.Equal(0.75, auroc.Compute().ToDouble(), 12);
        Assert.Equal(4, auroc.States["preds"].shape[0]);
    }

    // Ties: scores [0.5, 0.5, 0.2, 0.9], targets [1, 0, 0, 1]. Of the 2 x 2 (positive, negative) pairs, 3 are ordered right
    // and 1 is tied (counts 1/2): (3 + 0.5) / 4 = 0.875. Sorting ties by position instead would give 0.75 or 1.
    [Fact]
    public void Binary_TiedScores_CountHalf()
    {
        var auroc = new Auroc(MetricTask.Binary);
        auroc.Update(tensor(new[] { 0.5f, 0.5f, 0.2f, 0.9f }), tensor(new long[] { 1, 0, 0, 1 }));
        Assert.Equal(0.875, auroc.Compute().ToDouble(), 12);
    }

    // torchmetrics MulticlassAUROC docs: preds = [[0.75, 0.05, 0.05, 0.05, 0.05], [0.05, 0.75, 0.05, 0.05, 0.05],
    // [0.05, 0.05, 0.75, 0.05, 0.05], [0.05, 0.05, 0.05, 0.75, 0.05]], target = [0, 1, 3, 2], num_classes=5, average="macro"
    // -> tensor(0.5333) (per class [1.0000, 1.0000, 0.3333, 0.3333, 0.0000]: class 4 has no positives and scores 0).
    [Fact]
    public void Multiclass_TorchmetricsDocExample_MacroOneVsRest()
    {
        var preds = full(4, 5, 0.05f);
        for (int i = 0; i < 4; i++) preds[i, i] = tensor(0.75f);
        var auroc = new Auroc(MetricTask.Multiclass, 5);
        auroc.Update(preds, tensor(new long[] { 0, 1, 3, 2 }));
        Assert.Equal((1 + 1 + 1.0 / 3 + 1.0 / 3 + 0) / 5, auroc.Compute().ToDouble(), 12);
    }

    // Logits are softmaxed per row before the one-vs-rest areas (torchmetrics). Rows [5, 4] and [0, 0.5], targets [0, 1]:
    // softmax gives class-1 probabilities 0.269 and 0.622, so class 1's area is 1 (and class 0's is 1): macro 1. Raw class-1
    // scores (4 above 0.5) would give class 1 an area of 0: macro 0.5.
    [Fact]
    public void Multiclass_Logits_AreSoftmaxed()
    {
        var logits = tensor(new[] { 5f, 4f, 0f, 0.5f }).reshape(2, 2);
        var auroc = new Auroc(MetricTask.Multiclass, 2);
        auroc.Update(logits, tensor(new long[] { 0, 1 }));
        Assert.Equal(1.0, auroc.Compute().ToDouble(), 12);
    }
}
