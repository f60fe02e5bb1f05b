using Lightning.Metrics;
using static TorchSharp.torch;

namespace Lightning.Testing;

/// <summary>
/// 23 fixed samples for the metrics tests, made from a seeded generator so the "ddp" worker and the test process see the
/// same values: binary logits and labels, 4-class logits and labels, regression predictions and targets.
/// </summary>
public sealed class MetricSamples : IDisposable
{
    public const int Count = 23;
    public const int Classes = 4;

    public MetricSamples()
    {
        using var generator = new Generator(2024);
        BinaryTarget = randint(0, 2, [Count], generator: generator).DetachFromDisposeScope();
        // Logits that lean towards the label, so the scores are informative but not perfect.
        BinaryLogits = randn([Count], generator: generator).add(BinaryTarget.to(ScalarType.Float32).sub(0.5)).DetachFromDisposeScope();
        MulticlassTarget = randint(0, Classes, [Count], generator: generator).DetachFromDisposeScope();
        MulticlassLogits = randn([Count, Classes], generator: generator).add(nn.functional.one_hot(MulticlassTarget, Classes).to(ScalarType.Float32)).DetachFromDisposeScope();
        RegressionTarget = randn([Count], generator: generator).mul(3).DetachFromDisposeScope();
        RegressionPreds = RegressionTarget.add(randn([Count], generator: generator)).DetachFromDisposeScope();
    }

    public Tensor BinaryLogits { get; }
    public Tensor BinaryTarget { get; }
    public Tensor MulticlassLogits { get; }
    public Tensor MulticlassTarget { get; }
    public Tensor RegressionPreds { get; }
    public Tensor RegressionTarget { get; }

    /// <summary>Each rank's batches of sample indices, uneven on purpose: rank 0 three batches of 5, rank 1 batches of 4 and 4.</summary>
    public static IReadOnlyList<Tensor> RankBatches(int rank) => rank == 0
        ? [arange(0, 5), arange(5, 10), arange(10, 15)]
        : [arange(15, 19), arange(19, 23)];

    /// <summary>One of each scalar metric, binary and multiclass (micro and macro), by the key it is logged under.</summary>
    public static Dictionary<string, Metric> NewMetrics() => new()
    {
        ["binary_acc"] = new Accuracy(MetricTask.Binary),
        ["binary_precision"] = new Lightning.Metrics.Precision(MetricTask.Binary),
        ["binary_recall"] = new Recall(MetricTask.Binary),
        ["binary_f1"] = new F1Score(MetricTask.Binary),
        ["binary_auroc"] = new Auroc(MetricTask.Binary),
        ["mc_acc_micro"] = new Accuracy(MetricTask.Multiclass, Classes),
        ["mc_acc_macro"] = new Accuracy(MetricTask.Multiclass, Classes, MetricAverage.Macro),
        ["mc_precision_micro"] = new Lightning.Metrics.Precision(MetricTask.Multiclass, Classes),
        ["mc_precision_macro"] = new Lightning.Metrics.Precision(MetricTask.Multiclass, Classes, MetricAverage.Macro),
        ["mc_recall_micro"] = new Recall(MetricTask.Multiclass, Classes),
        ["mc_recall_macro"] = new Recall(MetricTask.Multiclass, Classes, MetricAverage.Macro),
        ["mc_f1_micro"] = new F1Score(MetricTask.Multiclass, Classes),
        ["mc_f1_macro"] = new F1Score(MetricTask.Multiclass, Classes, MetricAverage.Macro),
        ["mc_auroc"] = new Auroc(MetricTask.Multiclass, Classes),
        ["mse"] = new MeanSquaredError(),
        ["mae"] = new MeanAbsoluteError(),
        ["r2"] = new R2Score(),
    };

    /// <summary>Updates <paramref name="metric"/> (logged as <paramref name="key"/>) with the samples at <paramref name="indices"/>.</summary>
    public void Update(string key, Metric metric, Tensor indices)
    {
        if (key.StartsWith("binary_", StringComparison.Ordinal)) metric.Update(BinaryLogits.index_select(0, indices), BinaryTarget.index_select(0, indices));
        else if (key.StartsWith("mc_", StringComparison.Ordinal)) metric.Update(MulticlassLogits.index_select(0, indices), MulticlassTarget.index_select(0, indices));
        else metric.Update(RegressionPreds.index_select(0, indices), RegressionTarget.index_select(0, indices));
    }

    public void Dispose()
    {
        foreach (var t in new[] { BinaryLogits, BinaryTarget, MulticlassLogits, MulticlassTarget, RegressionPreds, RegressionTarget }) t.Dispose();
    }
}
