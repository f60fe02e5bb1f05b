using Lightning.Testing;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Lightning.MLNet.Tests;

/// <summary>
/// Bulk Transform scores blocks of rows in one ONNX Runtime call each, and gives the values of the saved chain, which
/// scores row by row through OnnxTransformer.
/// </summary>
public sealed class BatchedTransformTests : IDisposable
{
    private readonly TempDirectory _root = new();
    private readonly MLContext _ml = Contexts.New();

    public void Dispose() => _root.Dispose();

    private LightningTrainerOptions Options(string label, int transformBatchSize) => new()
    {
        LabelColumnName = label,
        TrainerOptions = new TrainerOptions
        {
            MaxEpochs = 2, DefaultRootDir = _root.Path, EnableProgressBar = false, EnableModelSummary = false,
        },
        Seed = 3,
        TransformBatchSize = transformBatchSize,
    };

    /// <summary>The model as saved: ML.NET's chain with OnnxTransformer, loaded back, which scores one row per call.</summary>
    private ITransformer RowByRow(ITransformer model, DataViewSchema schema)
    {
        var path = _root.Combine($"{Guid.NewGuid():N}.zip");
        _ml.Model.Save(model, schema, path);
        return _ml.Model.Load(path, out _);
    }

    /// <summary>Score and PredictedLabel (if any) of every row, read through one cursor.</summary>
    private static (float[][] Scores, uint[] Labels) Read(IDataView scored)
    {
        var score = scored.Schema["Score"];
        var label = scored.Schema.GetColumnOrNull("PredictedLabel");
        using var cursor = scored.GetRowCursor(label is { } l ? [score, l] : [score]);
        // Multiclass: a vector Score; regression: a scalar one, read as one value.
        var vectorGetter = score.Type is VectorDataViewType ? cursor.GetGetter<VBuffer<float>>(score) : null;
        var scalarGetter = vectorGetter is null ? cursor.GetGetter<float>(score) : null;
        var labelGetter = label is { } c ? cursor.GetGetter<uint>(c) : null;
        var scores = new List<float[]>();
        var labels = new List<uint>();
        VBuffer<float> s = default;
        float value = 0;
        uint k = 0;
        while (cursor.MoveNext())
        {
            if (vectorGetter is not null)
            {
                vectorGetter(ref s);
                scores.Add(s.DenseValues().ToArray());
            }
            else
            {
                scalarGetter!(ref value);
                scores.Add([value]);
            }
            if (labelGetter is null) continue;
            labelGetter(ref k);
            labels.Add(k);
        }
        return ([.. scores], [.. labels]);
    }

    [Fact]
    public void Multiclass_Transform_RunsOncePerBlockAndMatchesTheRowByRowChain()
    {
        var train = Data.View(_ml, Data.Rows(200, seed: 1));
        var test = Data.View(_ml, Data.Rows(300, seed: 2));
        using var model = _ml.MulticlassClassification.Trainers.Lightning(() => new Mlp(Data.FeatureCount, Data.ClassCount),
            Options(nameof(Row.Class), transformBatchSize: 64)).Fit(train);
        var rowByRow = RowByRow(model, train.Schema);
        try
        {
            var runs = model.BatchRuns;
            var (scores, labels) = Read(model.Transform(test));
            // 300 rows in blocks of 64: four full blocks and one of 44.
            Assert.Equal(5, model.BatchRuns - runs);

            var (expectedScores, expectedLabels) = Read(rowByRow.Transform(test));
            Assert.Equal(300, scores.Length);
            for (int i = 0; i < scores.Length; i++)
                Assert.Equal(expectedScores[i], scores[i], (a, b) => Math.Abs(a - b) <= 1e-6f);
            Assert.Equal(expectedLabels, labels);
            Assert.Equal(rowByRow.GetOutputSchema(test.Schema).Select(c => (c.Name, c.Type)),
                model.Transform(test).Schema.Select(c => (c.Name, c.Type)));
        }
        finally
        {
            (rowByRow as IDisposable)?.Dispose();
        }
    }

    [Fact]
    public void Regression_Transform_MatchesTheRowByRowChain()
    {
        var train = Data.View(_ml, Data.Rows(200, seed: 1));
        var test = Data.View(_ml, Data.Rows(50, seed: 2));
        using var model = _ml.Regression.Trainers.Lightning(() => new Mlp(Data.FeatureCount, 1, regression: true),
            Options(nameof(Row.Target), transformBatchSize: 16)).Fit(train);
        var rowByRow = RowByRow(model, train.Schema);
        try
        {
            var runs = model.BatchRuns;
            var (scores, _) = Read(model.Transform(test));
            Assert.Equal(4, model.BatchRuns - runs);
            var (expected, _) = Read(rowByRow.Transform(test));
            Assert.Equal(expected.Select(s => Assert.Single(s)), scores.Select(s => Assert.Single(s)), (a, b) => Math.Abs(a - b) <= 1e-6f);
        }
        finally
        {
            (rowByRow as IDisposable)?.Dispose();
        }
    }

    [Fact]
    public void Transform_ReadingOnlyInputColumns_RunsNoModel()
    {
        var train = Data.View(_ml, Data.Rows(64, seed: 1));
        using var model = _ml.MulticlassClassification.Trainers.Lightning(() => new Mlp(Data.FeatureCount, Data.ClassCount),
            Options(nameof(Row.Class), transformBatchSize: 8)).Fit(train);
        var runs = model.BatchRuns;

        var targets = model.Transform(train).GetColumn<float>(nameof(Row.Target)).ToArray();

        Assert.Equal(Data.Rows(64, seed: 1).Select(r => r.Target), targets);
        Assert.Equal(runs, model.BatchRuns);
    }

    [Fact]
    public void Options_InvalidTransformBatchSize_Fails()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() =>
            _ml.Regression.Trainers.Lightning(() => new Mlp(2, 1), new LightningTrainerOptions { TransformBatchSize = 0 }));
        Assert.Contains("TransformBatchSize is 0; it must be at least 1", error.Message);
    }
}
