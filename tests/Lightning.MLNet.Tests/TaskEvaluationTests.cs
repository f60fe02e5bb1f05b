using Lightning.Testing;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Lightning.MLNet.Tests;

/// <summary>
/// Each task's outputs go into the catalog's <c>Evaluate</c> as they are, and the metrics it reports equal the ones
/// computed here from the scored rows themselves.
/// </summary>
public sealed class TaskEvaluationTests : IDisposable
{
    private readonly TempDirectory _root = new();
    private readonly MLContext _ml = Contexts.New();

    public void Dispose() => _root.Dispose();

    internal static LightningTrainerOptions Options(string root, string label, int epochs) => new()
    {
        LabelColumnName = label,
        TrainerOptions = new TrainerOptions
        {
            MaxEpochs = epochs, DefaultRootDir = root, EnableProgressBar = false, EnableModelSummary = false, EnableCheckpointing = false,
        },
        BatchSize = 32,
        Seed = 7,
    };

    [Fact]
    public void Binary_Evaluate_TakesTheOutputsAndMatchesMetricsComputedFromThem()
    {
        var train = Data.View(_ml, Data.Rows(400, seed: 1));
        var testRows = Data.Rows(300, seed: 2);
        var trainer = _ml.BinaryClassification.Trainers.Lightning(() => new Mlp(Data.FeatureCount, 1, binary: true),
            Options(_root.Path, nameof(Row.Positive), epochs: 15));
        var shape = trainer.GetOutputSchema(SchemaShapes.Of(train.Schema));
        Assert.Contains(shape, c => c.Name == "Score" && c.Kind == SchemaShape.Column.VectorKind.Scalar && c.ItemType == NumberDataViewType.Single);
        Assert.Contains(shape, c => c.Name == "Probability" && c.Kind == SchemaShape.Column.VectorKind.Scalar && c.ItemType == NumberDataViewType.Single);
        Assert.Contains(shape, c => c.Name == "PredictedLabel" && c.Kind == SchemaShape.Column.VectorKind.Scalar && c.ItemType == BooleanDataViewType.Instance);
        using var model = trainer.Fit(train);

        var scored = model.Transform(Data.View(_ml, testRows));
        Assert.Equal(NumberDataViewType.Single, scored.Schema["Score"].Type);
        Assert.Equal(NumberDataViewType.Single, scored.Schema["Probability"].Type);
        Assert.Equal(BooleanDataViewType.Instance, scored.Schema["PredictedLabel"].Type);
        var metrics = _ml.BinaryClassification.Evaluate(scored, labelColumnName: nameof(Row.Positive));

        var scores = scored.GetColumn<float>("Score").ToArray();
        var probabilities = scored.GetColumn<float>("Probability").ToArray();
        var predicted = scored.GetColumn<bool>("PredictedLabel").ToArray();
        var truth = testRows.Select(r => r.Positive).ToArray();
        for (int i = 0; i < scores.Length; i++)
        {
            Assert.Equal(1 / (1 + Math.Exp(-scores[i])), probabilities[i], 5);
            Assert.Equal(scores[i] > 0, predicted[i]);
        }
        var accuracy = predicted.Zip(truth, (p, t) => p == t ? 1.0 : 0.0).Average();
        Assert.True(accuracy > 0.85, $"accuracy {accuracy}");
        Assert.Equal(accuracy, metrics.Accuracy, 6);
        var truePositives = predicted.Zip(truth).Count(pt => pt.First && pt.Second);
        Assert.Equal((double)truePositives / predicted.Count(p => p), metrics.PositivePrecision, 6);
        Assert.Equal((double)truePositives / truth.Count(t => t), metrics.PositiveRecall, 6);
        // AUC: the share of (positive, negative) pairs the score orders correctly, ties counting half.
        var positives = scores.Where((_, i) => truth[i]).ToArray();
        var negatives = scores.Where((_, i) => !truth[i]).ToArray();
        var auc = positives.Sum(p => negatives.Sum(n => p > n ? 1.0 : p == n ? 0.5 : 0.0)) / (positives.Length * (double)negatives.Length);
        Assert.Equal(auc, metrics.AreaUnderRocCurve, 4);
    }

    [Fact]
    public void Binary_LabelNotBoolean_FailsNamingColumnAndTypes()
    {
        var train = Data.View(_ml, Data.Rows(16, seed: 1));
        var trainer = _ml.BinaryClassification.Trainers.Lightning(() => new Mlp(Data.FeatureCount, 1, binary: true),
            Options(_root.Path, nameof(Row.Target), epochs: 1));
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => trainer.Fit(train));
        Assert.Contains("Schema mismatch for input column 'Target': expected Boolean (the binary classification label), got Single", error.Message);
    }

    [Fact]
    public void Binary_ModuleOfTwoOutputs_FailsNamingShapes()
    {
        var train = Data.View(_ml, Data.Rows(16, seed: 1));
        var trainer = _ml.BinaryClassification.Trainers.Lightning(() => new Mlp(Data.FeatureCount, 2, binary: true),
            Options(_root.Path, nameof(Row.Positive), epochs: 1));
        var error = Assert.Throws<InvalidOperationException>(() => trainer.Fit(train));
        Assert.Contains("Mlp returns scores of shape [1, 2]; a binary classification trainer expects one logit per row, [batch] or [batch, 1]", error.Message);
    }

    [Fact]
    public void Regression_Evaluate_TakesTheScalarScoreAndMatchesMetricsComputedFromIt()
    {
        var train = Data.View(_ml, Data.Rows(400, seed: 1));
        var testRows = Data.Rows(200, seed: 2);
        using var model = _ml.Regression.Trainers.Lightning(() => new Mlp(Data.FeatureCount, 1, regression: true),
            Options(_root.Path, nameof(Row.Target), epochs: 20)).Fit(train);

        var scored = model.Transform(Data.View(_ml, testRows));
        var metrics = _ml.Regression.Evaluate(scored, labelColumnName: nameof(Row.Target));

        var predictions = scored.GetColumn<float>("Score").Select(p => (double)p).ToArray();
        var targets = testRows.Select(r => (double)r.Target).ToArray();
        var errors = predictions.Zip(targets, (p, t) => p - t).ToArray();
        var mse = errors.Average(e => e * e);
        var mean = targets.Average();
        Assert.Equal(errors.Average(Math.Abs), metrics.MeanAbsoluteError, 5);
        Assert.Equal(mse, metrics.MeanSquaredError, 5);
        Assert.Equal(Math.Sqrt(mse), metrics.RootMeanSquaredError, 5);
        Assert.Equal(1 - errors.Sum(e => e * e) / targets.Sum(t => (t - mean) * (t - mean)), metrics.RSquared, 4);
        Assert.True(metrics.RSquared > 0.8, $"R² {metrics.RSquared}");
    }

    [Fact]
    public void Multiclass_Evaluate_TakesTheKeyAndScoresAndMatchesMetricsComputedFromThem()
    {
        var train = Data.View(_ml, Data.Rows(400, seed: 1));
        var testRows = Data.Rows(300, seed: 2);
        using var model = _ml.MulticlassClassification.Trainers.Lightning(() => new Mlp(Data.FeatureCount, Data.ClassCount),
            Options(_root.Path, nameof(Row.Class), epochs: 15)).Fit(train);

        var scored = model.Transform(Data.View(_ml, testRows));
        Assert.Equal(new KeyDataViewType(typeof(uint), Data.ClassCount), scored.Schema["PredictedLabel"].Type);
        var metrics = _ml.MulticlassClassification.Evaluate(scored, labelColumnName: nameof(Row.Class));

        var predicted = scored.GetColumn<uint>("PredictedLabel").Select(k => (int)k - 1).ToArray();
        var scores = scored.GetColumn<VBuffer<float>>("Score").Select(v => v.DenseValues().ToArray()).ToArray();
        var truth = testRows.Select(r => (int)r.Class).ToArray();
        var accuracy = predicted.Zip(truth, (p, t) => p == t ? 1.0 : 0.0).Average();
        var macro = Enumerable.Range(0, Data.ClassCount)
            .Select(c => truth.Select((t, i) => (t, i)).Where(x => x.t == c).Average(x => predicted[x.i] == c ? 1.0 : 0.0)).Average();
        var logLoss = truth.Select((t, i) => -Math.Log(Math.Max(scores[i][t], 1e-15))).Average();
        Assert.True(accuracy > 0.85, $"accuracy {accuracy}");
        Assert.Equal(accuracy, metrics.MicroAccuracy, 6);
        Assert.Equal(macro, metrics.MacroAccuracy, 6);
        Assert.Equal(logLoss, metrics.LogLoss, 3);
        Assert.Equal(truth.Length, metrics.ConfusionMatrix.Counts.Sum(row => row.Sum()));
    }
}
