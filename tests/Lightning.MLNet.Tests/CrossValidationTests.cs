using Lightning.Testing;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Lightning.MLNet.Tests;

/// <summary>The catalogs' <c>CrossValidate</c> with the Lightning trainers: one model per fold, each fold's metrics those of its held-out rows.</summary>
public sealed class CrossValidationTests : IDisposable
{
    private const int Folds = 3;
    private readonly TempDirectory _root = new();
    private readonly MLContext _ml = Contexts.New();

    public void Dispose() => _root.Dispose();

    private LightningTrainerOptions Options(string label) => TaskEvaluationTests.Options(_root.Path, label, epochs: 8);

    private static void DisposeModels<T>(IEnumerable<TrainCatalogBase.CrossValidationResult<T>> results) where T : class
    {
        foreach (var result in results) (result.Model as IDisposable)?.Dispose();
    }

    [Fact]
    public void Multiclass_CrossValidate_EachFoldsAccuracyIsThatOfItsHeldOutPredictions()
    {
        var data = Data.View(_ml, Data.Rows(300, seed: 1));
        var results = _ml.MulticlassClassification.CrossValidate(data,
            _ml.MulticlassClassification.Trainers.Lightning(() => new Mlp(Data.FeatureCount, Data.ClassCount), Options(nameof(Row.Class))),
            numberOfFolds: Folds, labelColumnName: nameof(Row.Class));
        try
        {
            Assert.Equal(Folds, results.Count);
            Assert.Equal(300, results.Sum(r => r.ScoredHoldOutSet.GetColumn<uint>(nameof(Row.Class)).Count()));
            foreach (var fold in results)
            {
                var truth = fold.ScoredHoldOutSet.GetColumn<uint>(nameof(Row.Class)).ToArray();
                var predicted = fold.ScoredHoldOutSet.GetColumn<uint>("PredictedLabel").ToArray();
                var accuracy = predicted.Zip(truth, (p, t) => p == t ? 1.0 : 0.0).Average();
                Assert.Equal(accuracy, fold.Metrics.MicroAccuracy, 6);
                Assert.True(accuracy > 0.7, $"fold {fold.Fold}: accuracy {accuracy}");
            }
            // A fresh module per fold: the folds' models differ.
            var first = Assert.IsType<LightningTransformer>(results[0].Model);
            var second = Assert.IsType<LightningTransformer>(results[1].Model);
            Assert.NotSame(first.Module, second.Module);
        }
        finally
        {
            DisposeModels(results);
        }
    }

    [Fact]
    public void Regression_CrossValidate_EachFoldsErrorIsThatOfItsHeldOutPredictions()
    {
        var data = Data.View(_ml, Data.Rows(300, seed: 1));
        var results = _ml.Regression.CrossValidate(data,
            _ml.Regression.Trainers.Lightning(() => new Mlp(Data.FeatureCount, 1, regression: true), Options(nameof(Row.Target))),
            numberOfFolds: Folds, labelColumnName: nameof(Row.Target));
        try
        {
            Assert.Equal(Folds, results.Count);
            foreach (var fold in results)
            {
                var targets = fold.ScoredHoldOutSet.GetColumn<float>(nameof(Row.Target)).ToArray();
                var scores = fold.ScoredHoldOutSet.GetColumn<float>("Score").ToArray();
                Assert.Equal(scores.Zip(targets, (s, t) => Math.Abs((double)s - t)).Average(), fold.Metrics.MeanAbsoluteError, 5);
            }
        }
        finally
        {
            DisposeModels(results);
        }
    }

    [Fact]
    public void Binary_CrossValidate_EachFoldsAccuracyIsThatOfItsHeldOutPredictions()
    {
        var data = Data.View(_ml, Data.Rows(300, seed: 1));
        var results = _ml.BinaryClassification.CrossValidate(data,
            _ml.BinaryClassification.Trainers.Lightning(() => new Mlp(Data.FeatureCount, 1, binary: true), Options(nameof(Row.Positive))),
            numberOfFolds: Folds, labelColumnName: nameof(Row.Positive));
        try
        {
            Assert.Equal(Folds, results.Count);
            foreach (var fold in results)
            {
                var truth = fold.ScoredHoldOutSet.GetColumn<bool>(nameof(Row.Positive)).ToArray();
                var predicted = fold.ScoredHoldOutSet.GetColumn<bool>("PredictedLabel").ToArray();
                Assert.Equal(predicted.Zip(truth, (p, t) => p == t ? 1.0 : 0.0).Average(), fold.Metrics.Accuracy, 6);
                Assert.True(fold.Metrics.AreaUnderRocCurve > 0.8, $"fold {fold.Fold}: AUC {fold.Metrics.AreaUnderRocCurve}");
            }
        }
        finally
        {
            DisposeModels(results);
        }
    }
}
