using Lightning.Metrics;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Metrics;

/// <summary>Bad input fails with a message that names the metric, the value and what is allowed.</summary>
public class MetricInputTests
{
    [Fact]
    public void ShapeMismatch_NamesBothShapes()
    {
        var error = Assert.Throws<ArgumentException>(() => new Accuracy(MetricTask.Multiclass, 3).Update(zeros(4, 2), tensor(new long[] { 0, 1, 2, 0 })));
        Assert.Contains("Accuracy (multiclass)", error.Message);
        Assert.Contains("[4, 2]", error.Message);
        Assert.Contains("[4, 3]", error.Message);

        var binary = Assert.Throws<ArgumentException>(() => new F1Score(MetricTask.Binary).Update(zeros(3), tensor(new long[] { 0, 1 })));
        Assert.Contains("F1Score (binary)", binary.Message);
        Assert.Contains("[3]", binary.Message);

        var regression = Assert.Throws<ArgumentException>(() => new MeanSquaredError().Update(zeros(3), zeros(2)));
        Assert.Contains("MeanSquaredError", regression.Message);
    }

    [Fact]
    public void ClassIdOutOfRange_NamesTheValueAndTheRange()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new Recall(MetricTask.Multiclass, 3).Update(tensor(new long[] { 0, 1 }), tensor(new long[] { 0, 5 })));
        Assert.Contains("Recall (multiclass)", error.Message);
        Assert.Contains("target holds 5", error.Message);
        Assert.Contains("0 to 2", error.Message);

        var binary = Assert.Throws<ArgumentOutOfRangeException>(() => new Auroc(MetricTask.Binary).Update(zeros(2), tensor(new long[] { 0, 2 })));
        Assert.Contains("AUROC (binary)", binary.Message);
        Assert.Contains("0 or 1", binary.Message);
    }

    [Fact]
    public void WrongDtype_NamesTheDtype()
    {
        var error = Assert.Throws<ArgumentException>(() => new Lightning.Metrics.Precision(MetricTask.Binary).Update(zeros(2), tensor(new[] { 0f, 1f })));
        Assert.Contains("Precision (binary)", error.Message);
        Assert.Contains("Float32", error.Message);
        Assert.Contains("integer", error.Message);

        var scores = Assert.Throws<ArgumentException>(() => new Auroc(MetricTask.Binary).Update(tensor(new long[] { 0, 1 }), tensor(new long[] { 0, 1 })));
        Assert.Contains("floating-point", scores.Message);
    }

    [Fact]
    public void NumClassesBelowTwo_OrMissing_IsRejected()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new Accuracy(MetricTask.Multiclass, 1));
        Assert.Contains("Accuracy (multiclass)", error.Message);
        Assert.Contains("NumClasses = 1", error.Message);
        Assert.Contains("2 or more", error.Message);
        Assert.Throws<ArgumentNullException>(() => new ConfusionMatrix(MetricTask.Multiclass));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Auroc(MetricTask.Binary, 3));
    }
}
