using Lightning.Metrics;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Metrics;

/// <summary>MeanSquaredError, MeanAbsoluteError and R2Score against torchmetrics' and scikit-learn's documentation examples.</summary>
public class RegressionMetricTests
{
    // torchmetrics MeanSquaredError docs: target = tensor([2.5, 5.0, 4.0, 8.0]); preds = tensor([3.0, 5.0, 2.5, 7.0]) -> tensor(0.8750).
    // scikit-learn mean_squared_error docs: y_true = [3, -0.5, 2, 7]; y_pred = [2.5, 0.0, 2, 8] -> 0.375.
    [Fact]
    public void MeanSquaredError_DocExamples()
    {
        var mse = new MeanSquaredError();
        mse.Update(tensor(new[] { 3.0f, 5.0f, 2.5f, 7.0f }), tensor(new[] { 2.5f, 5.0f, 4.0f, 8.0f }));
        Assert.Equal(0.875, mse.Compute().ToDouble(), 12);
        mse.Reset();
        mse.Update(tensor(new[] { 2.5, 0.0 }), tensor(new[] { 3, -0.5 }));
        mse.Update(tensor(new[] { 2.0, 8.0 }), tensor(new[] { 2.0, 7.0 }));
        Assert.Equal(0.375, mse.Compute().ToDouble(), 12);
    }

    // torchmetrics MeanAbsoluteError docs: target = tensor([3.0, -0.5, 2.0, 7.0]); preds = tensor([2.5, 0.0, 2.0, 8.0]) -> tensor(0.5000)
    // (scikit-learn mean_absolute_error docs: the same values -> 0.5).
    [Fact]
    public void MeanAbsoluteError_DocExample()
    {
        var mae = new MeanAbsoluteError();
        mae.Update(tensor(new[] { 2.5f, 0.0f }), tensor(new[] { 3.0f, -0.5f }));
        mae.Update(tensor(new[] { 2.0f, 8.0f }), tensor(new[] { 2.0f, 7.0f }));
        Assert.Equal(0.5, mae.Compute().ToDouble(), 12);
    }

    // torchmetrics R2Score docs: target = tensor([3, -0.5, 2, 7]); preds = tensor([2.5, 0.0, 2, 8]) -> tensor(0.9486)
    // (scikit-learn r2_score docs: 0.948...). By hand: rss = 1.5, mean 2.875, tss = 29.1875, 1 - 1.5 / 29.1875 = 0.94861...
    // Split over batches, the mean must be that of all targets, not per batch.
    [Fact]
    public void R2Score_DocExample_OverBatches()
    {
        var r2 = new R2Score();
        r2.Update(tensor(new[] { 2.5f, 0.0f }), tensor(new[] { 3f, -0.5f }));
        r2.Update(tensor(new[] { 2f, 8f }), tensor(new[] { 2f, 7f }));
        Assert.Equal(1 - 1.5 / 29.1875, r2.Compute().ToDouble(), 12);
        Assert.Equal(4, r2.States["total"].ToInt64());
    }

    [Fact]
    public void R2Score_WithOneSample_SaysItNeedsTwo()
    {
        var r2 = new R2Score();
        r2.Update(tensor(new[] { 1f }), tensor(new[] { 2f }));
        var error = Assert.Throws<InvalidOperationException>(() => r2.Compute());
        Assert.Contains("at least 2 samples", error.Message);
    }
}
