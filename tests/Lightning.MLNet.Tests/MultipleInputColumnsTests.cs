using Lightning.Testing;
using Microsoft.ML;
using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Lightning.MLNet.Tests;

/// <summary>
/// Several input columns reach the module as forward arguments in the order of <see cref="LightningTrainerOptions.FeatureColumnNames"/>,
/// in training, in <c>Transform</c> (batched), in a prediction engine and in the saved model (one ONNX input per column).
/// </summary>
public sealed class MultipleInputColumnsTests : IDisposable
{
    private readonly TempDirectory _root = new();
    private readonly MLContext _ml = Contexts.New();

    public void Dispose() => _root.Dispose();

    public sealed class TwoColumnRow
    {
        [VectorType(3)]
        public float[] A { get; set; } = [];

        [VectorType(2)]
        public float[] B { get; set; } = [];

        public float Target { get; set; }
    }

    public sealed class ScoreRow
    {
        public float Score { get; set; }
    }

    private static List<TwoColumnRow> Rows(int count, int seed)
    {
        var random = new Random(seed);
        float Next() => (float)(random.NextDouble() * 2 - 1);
        return Enumerable.Range(0, count).Select(_ =>
        {
            float[] a = [Next(), Next(), Next()], b = [Next(), Next()];
            return new TwoColumnRow { A = a, B = b, Target = a[0] - 2 * b[1] + 0.5f * a[2] * b[0] };
        }).ToList();
    }

    internal static LightningTrainerOptions Options(string root, string label, params string[] inputs) => new()
    {
        FeatureColumnNames = inputs,
        LabelColumnName = label,
        TrainerOptions = new TrainerOptions
        {
            MaxEpochs = 2, DefaultRootDir = root, EnableProgressBar = false, EnableModelSummary = false, EnableCheckpointing = false,
        },
        BatchSize = 16,
        TransformBatchSize = 8,
        Seed = 3,
    };

    /// <summary>The module's own TorchSharp forward, in eval mode, on <paramref name="inputs"/>.</summary>
    internal static float[][] Forward(ColumnsNet module, params Tensor[] inputs)
    {
        module.eval();
        using var noGrad = no_grad();
        using var output = module.Forward(inputs);
        return Enumerable.Range(0, (int)output.shape[0]).Select(i => output[i].data<float>().ToArray()).ToArray();
    }

    [Fact]
    public void Regression_TwoColumns_ScoresEqualTheModulesForwardInTransformEngineAndSavedModel()
    {
        var train = _ml.Data.LoadFromEnumerable(Rows(64, seed: 1));
        var testRows = Rows(20, seed: 2);
        var test = _ml.Data.LoadFromEnumerable(testRows);
        var trainer = _ml.Regression.Trainers.Lightning(
            () => new ColumnsNet([(ColumnKind.Dense, 3), (ColumnKind.Dense, 2)], 1, regression: true),
            Options(_root.Path, nameof(TwoColumnRow.Target), nameof(TwoColumnRow.A), nameof(TwoColumnRow.B)));
        using var model = trainer.Fit(train);
        Assert.Equal(["A", "B"], model.FeatureColumnNames);

        var expected = Forward((ColumnsNet)model.Module,
            tensor(testRows.SelectMany(r => r.A).ToArray(), [20, 3]), tensor(testRows.SelectMany(r => r.B).ToArray(), [20, 2]));
        var transformed = model.Transform(test).GetColumn<float>("Score").ToArray();
        Assert.Equal(20, transformed.Length);
        for (int i = 0; i < 20; i++) Assert.Equal(expected[i][0], transformed[i], 4);

        using var engine = _ml.Model.CreatePredictionEngine<TwoColumnRow, ScoreRow>(model);
        for (int i = 0; i < 20; i++) Assert.Equal(expected[i][0], engine.Predict(testRows[i]).Score, 4);

        var path = Path.Combine(_root.Path, "model.zip");
        _ml.Model.Save(model, train.Schema, path);
        var loaded = Contexts.New().Model.Load(path, out _);
        var reloaded = loaded.Transform(test).GetColumn<float>("Score").ToArray();
        for (int i = 0; i < 20; i++) Assert.Equal(expected[i][0], reloaded[i], 4);
    }

    [Fact]
    public void Fit_SecondColumnNotAVectorOfSingleOrInt64_FailsNamingColumnTypeAndWhatIsAllowed()
    {
        var data = _ml.Data.LoadFromEnumerable(Rows(8, seed: 1))
            .Let(d => _ml.Transforms.Conversion.ConvertType("B", "B", DataKind.Double).Fit(d).Transform(d));
        var trainer = _ml.Regression.Trainers.Lightning(
            () => new ColumnsNet([(ColumnKind.Dense, 3), (ColumnKind.Dense, 2)], 1, regression: true),
            Options(_root.Path, nameof(TwoColumnRow.Target), "A", "B"));

        var error = Assert.Throws<ArgumentOutOfRangeException>(() => trainer.Fit(data));
        Assert.Contains("Schema mismatch for input column 'B': expected Vector<Single>, Vector<Int64> or Vector<Key<UInt32>> of known size, a variable-length Vector<Single> or Vector<Int64>, or an Image of known size, got Vector<Double, 2>", error.Message);
        var shapeError = Assert.Throws<ArgumentOutOfRangeException>(() => trainer.GetOutputSchema(SchemaShapes.Of(data.Schema)));
        Assert.Contains("Schema mismatch for input column 'B': expected Vector<Single>, Vector<Int64> or Vector<Key<UInt32>> of known size, a variable-length Vector<Single> or Vector<Int64>, or an Image of known size, got Vector<Double>", shapeError.Message);
    }

    [Fact]
    public void Transform_InputColumnOfAnotherSizeThanInTraining_FailsNamingIt()
    {
        using var model = _ml.Regression.Trainers.Lightning(
            () => new ColumnsNet([(ColumnKind.Dense, 3), (ColumnKind.Dense, 2)], 1, regression: true),
            Options(_root.Path, nameof(TwoColumnRow.Target), "A", "B")).Fit(_ml.Data.LoadFromEnumerable(Rows(16, seed: 1)));
        var swapped = _ml.Data.LoadFromEnumerable(Rows(4, seed: 2).Select(r => new TwoColumnRow { A = r.A, B = r.B }))
            .Let(d => _ml.Transforms.CopyColumns("B", "A").Fit(d).Transform(d));

        var error = Assert.Throws<ArgumentOutOfRangeException>(() => model.Transform(swapped));
        Assert.Contains("Schema mismatch for input column 'B': expected Vector<Single, 2>, got Vector<Single, 3>", error.Message);
    }

    [Theory]
    [InlineData(new[] { "A", "A" }, "names column 'A' twice")]
    [InlineData(new string[0], "must name at least one column")]
    [InlineData(new[] { "A", "Target" }, "Column 'Target' is both the label and an input column")]
    public void Options_BadFeatureColumnNames_FailNamingTheProblem(string[] names, string message)
    {
        var error = Assert.Throws<ArgumentException>(() => _ml.Regression.Trainers.Lightning(
            () => new ColumnsNet([(ColumnKind.Dense, 3)], 1, regression: true), Options(_root.Path, "Target", names)));
        Assert.Contains(message, error.Message);
    }
}
