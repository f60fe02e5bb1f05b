using Lightning.Testing;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Lightning.MLNet.Tests;

/// <summary>Conformance of the Lightning trainers, in the manner of ML.NET's TestEstimatorCore.</summary>
public sealed class LightningTrainerTests : IDisposable
{
    private readonly TempDirectory _root = new();
    private readonly MLContext _ml = Contexts.New();

    public void Dispose() => _root.Dispose();

    private LightningTrainerOptions Options(int epochs = 20, IDataView? validation = null) => new()
    {
        LabelColumnName = nameof(Row.Class),
        TrainerOptions = new TrainerOptions
        {
            MaxEpochs = epochs, DefaultRootDir = _root.Path, EnableProgressBar = false, EnableModelSummary = false,
        },
        BatchSize = 32,
        Seed = 7,
        ValidationData = validation,
    };

    private LightningMulticlassTrainer Classifier(int epochs = 20, IDataView? validation = null) =>
        _ml.MulticlassClassification.Trainers.Lightning(() => new Mlp(Data.FeatureCount, Data.ClassCount), Options(epochs, validation));

    private static SchemaShape ShapeOf(DataViewSchema schema) => SchemaShapes.Of(schema);

    private static float[][] Scores(IDataView scored) =>
        scored.GetColumn<VBuffer<float>>("Score").Select(v => v.DenseValues().ToArray()).ToArray();

    [Fact]
    public void Multiclass_SeparableClasses_BeatsMajorityBaselineAndEvaluates()
    {
        var train = Data.View(_ml, Data.Rows(600, seed: 1));
        var test = Data.View(_ml, Data.Rows(300, seed: 2));
        using var model = Classifier(validation: test).Fit(train);

        var scored = model.Transform(test);
        var metrics = _ml.MulticlassClassification.Evaluate(scored, labelColumnName: nameof(Row.Class));
        var majority = Data.Rows(300, seed: 2).GroupBy(r => r.Class).Max(g => g.Count()) / 300.0;
        Assert.True(metrics.MicroAccuracy > Math.Max(0.85, majority + 0.3), $"accuracy {metrics.MicroAccuracy}, majority {majority}");
        Assert.All(Scores(scored), s => Assert.Equal(1f, s.Sum(), 3));
        Assert.NotNull(model.CheckpointPath);
        Assert.True(File.Exists(model.CheckpointPath));
        Assert.Equal(Data.ClassCount, model.ClassCount);
    }

    [Fact]
    public void Multiclass_OutputSchema_PropagatesScoreAndPredictedLabelKey()
    {
        var train = Data.View(_ml, Data.Rows(64, seed: 1));
        var trainer = Classifier(epochs: 1);
        var shape = trainer.GetOutputSchema(ShapeOf(train.Schema));
        Assert.Contains(shape, c => c.Name == "Score" && c.Kind == SchemaShape.Column.VectorKind.Vector && c.ItemType == NumberDataViewType.Single);
        Assert.Contains(shape, c => c.Name == "PredictedLabel" && c.IsKey && c.Kind == SchemaShape.Column.VectorKind.Scalar);

        using var model = trainer.Fit(train);
        var schema = model.GetOutputSchema(train.Schema);
        Assert.Equal(new VectorDataViewType(NumberDataViewType.Single, Data.ClassCount), schema["Score"].Type);
        // A scalar key, as ML.NET's own multiclass trainers make it.
        var key = Assert.IsType<KeyDataViewType>(schema["PredictedLabel"].Type);
        Assert.Equal((ulong)Data.ClassCount, key.Count);
        Assert.Equal(schema.Select(c => (c.Name, c.Type)), model.Transform(train).Schema.Select(c => (c.Name, c.Type)));
    }

    [Fact]
    public void Multiclass_PredictedLabelIsArgmaxOfScore()
    {
        var train = Data.View(_ml, Data.Rows(128, seed: 1));
        using var model = Classifier(epochs: 2).Fit(train);
        var scored = model.Transform(train);
        var predicted = scored.GetColumn<uint>("PredictedLabel").ToArray();
        var scores = Scores(scored);
        for (int i = 0; i < scores.Length; i++)
            Assert.Equal((uint)Array.IndexOf(scores[i], scores[i].Max()) + 1, predicted[i]);
    }

    private static readonly string[] Names = ["zebra", "ant", "moth"];

    private sealed class NamedRow
    {
        [VectorType(Data.FeatureCount)]
        public float[] Features { get; set; } = [];

        public string Name { get; set; } = "";
    }

    [Fact]
    public void Multiclass_TextLabelPipeline_MapKeyToValueGivesBackTheLabels()
    {
        var rows = Data.Rows(600, seed: 1).Select(r => new NamedRow { Features = r.Features, Name = Names[r.Class] }).ToList();
        var test = Data.Rows(200, seed: 2).Select(r => new NamedRow { Features = r.Features, Name = Names[r.Class] }).ToList();
        // Sorted keys (ant, moth, zebra) differ from the class order, so a mapping by class number would show.
        var pipeline = _ml.Transforms.Conversion.MapValueToKey("Label", nameof(NamedRow.Name), keyOrdinality: Microsoft.ML.Transforms.ValueToKeyMappingEstimator.KeyOrdinality.ByValue)
            .Append(_ml.MulticlassClassification.Trainers.Lightning(() => new Mlp(Data.FeatureCount, Data.ClassCount), Options() with { LabelColumnName = "Label" }))
            .Append(_ml.Transforms.Conversion.MapKeyToValue("PredictedName", "PredictedLabel"));
        var model = pipeline.Fit(_ml.Data.LoadFromEnumerable(rows));
        try
        {
            var scored = model.Transform(_ml.Data.LoadFromEnumerable(test));
            var predicted = scored.GetColumn<ReadOnlyMemory<char>>("PredictedName").Select(v => v.ToString()).ToArray();
            var accuracy = predicted.Zip(test, (p, r) => p == r.Name ? 1.0 : 0.0).Average();
            Assert.True(accuracy > 0.85, $"accuracy {accuracy}: {string.Join(",", predicted.Take(10))} vs {string.Join(",", test.Take(10).Select(r => r.Name))}");
            Assert.Equal(0.0, _ml.MulticlassClassification.Evaluate(scored).MicroAccuracy - accuracy, 6);
        }
        finally
        {
            model.Dispose();
        }
    }

    private sealed class NamedPrediction
    {
        public string PredictedLabel { get; set; } = "";

        public float[] Score { get; set; } = [];
    }

    [Fact]
    public void PredictionEngine_SavedTextLabelPipeline_ServesTheBulkTransformsLabelAndScores()
    {
        var rows = Data.Rows(300, seed: 1).Select(r => new NamedRow { Features = r.Features, Name = Names[r.Class] }).ToList();
        var test = Data.Rows(20, seed: 2).Select(r => new NamedRow { Features = r.Features, Name = Names[r.Class] }).ToList();
        var pipeline = _ml.Transforms.Conversion.MapValueToKey("Label", nameof(NamedRow.Name))
            .Append(_ml.MulticlassClassification.Trainers.Lightning(() => new Mlp(Data.FeatureCount, Data.ClassCount), Options(epochs: 5) with { LabelColumnName = "Label" }))
            .Append(_ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
        var data = _ml.Data.LoadFromEnumerable(rows);
        using var model = pipeline.Fit(data);
        var path = _root.Combine("served.zip");
        File.WriteAllText(path, "an older model that the save replaces");
        _ml.Model.SaveDurably(model, data.Schema, path);
        Assert.Equal(new[] { path }, Directory.GetFiles(_root.Path, "*served.zip*", SearchOption.AllDirectories));
        var loaded = _ml.Model.Load(path, out _);
        try
        {
            var bulk = model.Transform(_ml.Data.LoadFromEnumerable(test));
            var labels = bulk.GetColumn<ReadOnlyMemory<char>>("PredictedLabel").Select(v => v.ToString()).ToArray();
            var scores = Scores(bulk);
            using var engine = _ml.Model.CreatePredictionEngine<NamedRow, NamedPrediction>(loaded);
            for (int i = 0; i < test.Count; i++)
            {
                var prediction = engine.Predict(test[i]);
                Assert.Equal(labels[i], prediction.PredictedLabel);
                Assert.Equal(scores[i], prediction.Score, (a, b) => Math.Abs(a - b) <= 1e-6f);
            }
            Assert.All(labels, label => Assert.Contains(label, Names));
        }
        finally
        {
            (loaded as IDisposable)?.Dispose();
        }
    }

    [Fact]
    public void Regression_LinearTarget_BeatsMeanBaseline()
    {
        var train = Data.View(_ml, Data.Rows(400, seed: 1));
        var test = Data.View(_ml, Data.Rows(200, seed: 2));
        var trainer = _ml.Regression.Trainers.Lightning(() => new Mlp(Data.FeatureCount, 1, regression: true),
            Options(epochs: 30) with { LabelColumnName = nameof(Row.Target) });
        var shape = trainer.GetOutputSchema(ShapeOf(train.Schema));
        Assert.Contains(shape, c => c.Name == "Score" && c.Kind == SchemaShape.Column.VectorKind.Scalar && c.ItemType == NumberDataViewType.Single);
        Assert.DoesNotContain(shape, c => c.Name == "PredictedLabel");
        using var model = trainer.Fit(train);

        var scored = model.Transform(test);
        Assert.Equal(NumberDataViewType.Single, scored.Schema["Score"].Type);
        var predictions = scored.GetColumn<float>("Score").ToArray();
        var targets = Data.Rows(200, seed: 2).Select(r => r.Target).ToArray();
        var mse = predictions.Zip(targets, (p, t) => (p - t) * (p - t)).Average();
        var variance = targets.Select(t => (t - targets.Average()) * (t - targets.Average())).Average();
        Assert.True(mse < variance * 0.2, $"MSE {mse}, variance {variance}");
    }

    [Fact]
    public void SaveLoad_RoundTrip_GivesIdenticalPredictions()
    {
        var train = Data.View(_ml, Data.Rows(128, seed: 1));
        using var model = Classifier(epochs: 2).Fit(train);
        var path = _root.Combine("model.zip");
        _ml.Model.Save(model, train.Schema, path);

        var loaded = _ml.Model.Load(path, out var inputSchema);
        try
        {
            Assert.Equal(train.Schema[nameof(Row.Features)].Type, inputSchema[nameof(Row.Features)].Type);
            var before = model.Transform(train);
            var after = loaded.Transform(train);
            Assert.Equal(Scores(before), Scores(after));
            Assert.Equal(before.GetColumn<uint>("PredictedLabel"), after.GetColumn<uint>("PredictedLabel"));
            Assert.Equal(before.Schema.Select(c => (c.Name, c.Type)), after.Schema.Select(c => (c.Name, c.Type)));
        }
        finally
        {
            (loaded as IDisposable)?.Dispose();
        }
    }

    [Fact]
    public void Fit_Twice_GivesIndependentModels()
    {
        var train = Data.View(_ml, Data.Rows(128, seed: 1));
        var trainer = Classifier(epochs: 1);
        using var first = trainer.Fit(train);
        var firstScores = Scores(first.Transform(train));
        using var second = trainer.Fit(train);

        Assert.NotSame(first.Module, second.Module);
        // Same seed, same data: the same model, trained afresh rather than continued.
        Assert.Equal(firstScores, Scores(second.Transform(train)));
        // Training the second did not touch the first's weights.
        Assert.Equal(firstScores, Scores(first.Transform(train)));
    }

    [Fact]
    public void Dispose_RemovesTheOnnxFileTheTransformerScoredFrom()
    {
        var train = Data.View(_ml, Data.Rows(32, seed: 1));
        var before = Directory.GetDirectories(Path.GetTempPath(), "lightning-mlnet-*").ToHashSet();
        var model = Classifier(epochs: 1).Fit(train);
        var created = Assert.Single(Directory.GetDirectories(Path.GetTempPath(), "lightning-mlnet-*"), d => !before.Contains(d));
        Assert.NotEmpty(Directory.GetFiles(created));

        model.Dispose();

        Assert.False(Directory.Exists(created));
    }

    [Fact]
    public void Fit_Cancelled_StopsTrainingAtTheNextBatch()
    {
        var train = Data.View(_ml, Data.Rows(320, seed: 1));
        using var cancellation = new CancellationTokenSource();
        var steps = 0;
        var trainer = _ml.MulticlassClassification.Trainers.Lightning(
            () => new Mlp(Data.FeatureCount, Data.ClassCount) { OnStep = () => { if (++steps == 3) cancellation.Cancel(); } },
            Options(epochs: 100) with { CancellationToken = cancellation.Token });

        Assert.ThrowsAny<OperationCanceledException>(() => trainer.Fit(train));
        Assert.Equal(3, steps);
    }

    private sealed class CountValidationBatches : Lightning.Callbacks.Callback
    {
        public int Batches { get; private set; }

        public override void OnValidationBatchEnd(Trainer trainer, LightningModule module, object? batch, int batchIdx) => Batches++;
    }

    [Fact]
    public void Fit_WithValidationData_ValidatesOnItsRowsEachEpoch()
    {
        var train = Data.View(_ml, Data.Rows(64, seed: 1));
        var validation = Data.View(_ml, Data.Rows(40, seed: 2));
        var counter = new CountValidationBatches();
        var options = Options(epochs: 2, validation) with { BatchSize = 16 };
        var trainer = _ml.MulticlassClassification.Trainers.Lightning(() => new Mlp(Data.FeatureCount, Data.ClassCount),
            options with { TrainerOptions = options.TrainerOptions! with { Callbacks = [counter], NumSanityValSteps = 0 } });

        using var model = trainer.Fit(train);

        Assert.Equal(2 * 3, counter.Batches);
    }

    [Fact]
    public void Fit_ValidationDataOfAnotherWidth_FailsNamingColumn()
    {
        var train = Data.View(_ml, Data.Rows(16, seed: 1));
        var narrow = _ml.Data.LoadFromEnumerable(Enumerable.Range(0, 4).Select(_ => new NarrowRow()).ToList());
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => Classifier(epochs: 1, validation: narrow).Fit(train));
        Assert.Contains("Schema mismatch for input column 'Features': expected Vector<Single, 20>, got Vector<Single, 10>", error.Message);
    }

    [Fact]
    public void Fit_WrongFeatureType_FailsNamingColumnAndTypes()
    {
        var rows = Enumerable.Range(0, 8).Select(i => new { Features = (float)i, Class = (uint)(i % 3) + 1 }).ToList();
        var data = _ml.Data.LoadFromEnumerable(rows);
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => Classifier(epochs: 1).Fit(data));
        Assert.Contains("Schema mismatch for input column 'Features': expected Vector<Single>, Vector<Int64> or Vector<Key<UInt32>> of known size, a variable-length Vector<Single> or Vector<Int64>, or an Image of known size, got Single", error.Message);
    }

    [Fact]
    public void Fit_LabelNotKey_FailsNamingColumn()
    {
        var train = Data.View(_ml, Data.Rows(16, seed: 1));
        var trainer = _ml.MulticlassClassification.Trainers.Lightning(() => new Mlp(Data.FeatureCount, 3), Options(1) with { LabelColumnName = nameof(Row.Target) });
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => trainer.Fit(train));
        Assert.Contains("Schema mismatch for input column 'Target': expected Key<UInt32>", error.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => trainer.GetOutputSchema(ShapeOf(train.Schema)));
    }

    [Fact]
    public void Transform_WrongFeatureSize_FailsWithExpectedAndActualSizes()
    {
        var train = Data.View(_ml, Data.Rows(64, seed: 1));
        using var model = Classifier(epochs: 1).Fit(train);
        var narrow = _ml.Data.LoadFromEnumerable(Enumerable.Range(0, 4).Select(_ => new NarrowRow()).ToList());
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => model.Transform(narrow));
        Assert.Contains("Schema mismatch for input column 'Features': expected Vector<Single, 20>, got Vector<Single, 10>", error.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => model.GetOutputSchema(narrow.Schema));
    }

    [Fact]
    public void Fit_ModuleOfWrongOutputWidth_FailsNamingShapes()
    {
        var train = Data.View(_ml, Data.Rows(16, seed: 1));
        var five = _ml.MulticlassClassification.Trainers.Lightning(() => new Mlp(Data.FeatureCount, 5), Options(1));
        var error = Assert.ThrowsAny<Exception>(() => five.Fit(train));
        Assert.Contains("expects [batch, 3]", error.Message);
    }

    [Fact]
    public void Options_InvalidBatchSize_Fails()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() =>
            _ml.MulticlassClassification.Trainers.Lightning(() => new Mlp(2, 2), new LightningTrainerOptions { BatchSize = 0 }));
        Assert.Contains("BatchSize is 0; it must be at least 1", error.Message);
    }

    public sealed class NarrowRow
    {
        [VectorType(10)]
        public float[] Features { get; set; } = new float[10];
    }
}
