using Lightning.Testing;
using Microsoft.ML;
using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Lightning.MLNet.Tests;

/// <summary>
/// Token ids reach the module as int64 tensors: a <c>Vector&lt;Int64&gt;</c> column as it is, a key column (as from
/// <c>MapValueToKey</c>) as the zero-based ids key - 1, in training, <c>Transform</c>, a prediction engine and the saved model.
/// </summary>
public sealed class TokenIdColumnsTests : IDisposable
{
    private const int Length = 4;
    private const int Vocabulary = 10;
    private static readonly string[] Words = ["the", "cat", "sat", "on", "a", "mat", "dog", "ran", "far", "away"];

    private readonly TempDirectory _root = new();
    private readonly MLContext _ml = Contexts.New();

    public void Dispose() => _root.Dispose();

    public sealed class IdRow
    {
        [VectorType(Length)]
        public long[] Ids { get; set; } = [];

        [VectorType(Length)]
        public string[] Words { get; set; } = [];

        public uint Class { get; set; }

        public float Target { get; set; }
    }

    public sealed class ScoreRow
    {
        public float Score { get; set; }
    }

    private static List<IdRow> Rows(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ =>
        {
            long[] ids = [.. Enumerable.Range(0, Length).Select(_ => (long)random.Next(Vocabulary))];
            return new IdRow
            {
                Ids = ids, Words = [.. ids.Select(i => Words[i])], Class = (uint)(ids.Sum() % 3), Target = ids.Count(i => i < 3) - 1.5f,
            };
        }).ToList();
    }

    private IDataView View(IEnumerable<IdRow> rows)
    {
        var schema = SchemaDefinition.Create(typeof(IdRow));
        schema[nameof(IdRow.Class)].ColumnType = new KeyDataViewType(typeof(uint), 3);
        return _ml.Data.LoadFromEnumerable(rows, schema);
    }

    [Fact]
    public void Multiclass_Int64Ids_ScoresAreTheSoftmaxOfTheModulesForwardInTransformAndSavedModel()
    {
        var train = View(Rows(64, seed: 1));
        var testRows = Rows(12, seed: 2);
        var test = View(testRows);
        using var model = _ml.MulticlassClassification.Trainers.Lightning(() => new ColumnsNet([(ColumnKind.Tokens, Vocabulary)], 3, regression: false),
            MultipleInputColumnsTests.Options(_root.Path, nameof(IdRow.Class), nameof(IdRow.Ids))).Fit(train);

        var expected = MultipleInputColumnsTests.Forward((ColumnsNet)model.Module, tensor(testRows.SelectMany(r => r.Ids).ToArray(), [12, Length]))
            .Select(Softmax).ToArray();
        var path = Path.Combine(_root.Path, "model.zip");
        _ml.Model.Save(model, train.Schema, path);
        var loaded = Contexts.New().Model.Load(path, out _);
        foreach (var scored in new[] { model.Transform(test), loaded.Transform(test) })
        {
            var scores = scored.GetColumn<VBuffer<float>>("Score").Select(v => v.DenseValues().ToArray()).ToArray();
            for (int i = 0; i < 12; i++)
                for (int k = 0; k < 3; k++) Assert.Equal(expected[i][k], scores[i][k], 4);
        }
    }

    private static float[] Softmax(float[] scores)
    {
        var e = scores.Select(s => Math.Exp(s - scores.Max())).ToArray();
        return [.. e.Select(v => (float)(v / e.Sum()))];
    }

    [Fact]
    public void Regression_KeyColumnFromMapValueToKey_ReachesTheModuleAsKeyMinusOne()
    {
        var trainRows = Rows(64, seed: 1);
        var testRows = Rows(12, seed: 2);
        var toKeys = _ml.Transforms.Conversion.MapValueToKey("Tokens", nameof(IdRow.Words)).Fit(View(trainRows));
        var train = toKeys.Transform(View(trainRows));
        var test = toKeys.Transform(View(testRows));
        Assert.Equal(new VectorDataViewType(new KeyDataViewType(typeof(uint), Vocabulary), Length), train.Schema["Tokens"].Type);
        using var model = _ml.Regression.Trainers.Lightning(() => new ColumnsNet([(ColumnKind.Tokens, Vocabulary)], 1, regression: true),
            MultipleInputColumnsTests.Options(_root.Path, nameof(IdRow.Target), "Tokens")).Fit(train);

        // ML.NET's key values (1-based, in order of occurrence) read from the data itself, minus one.
        var keys = test.GetColumn<VBuffer<uint>>("Tokens").SelectMany(v => v.DenseValues()).ToArray();
        Assert.DoesNotContain(0u, keys);
        var expected = MultipleInputColumnsTests.Forward((ColumnsNet)model.Module, tensor(keys.Select(k => (long)k - 1).ToArray(), [12, Length]));
        var transformed = model.Transform(test).GetColumn<float>("Score").ToArray();
        using var engine = _ml.Model.CreatePredictionEngine<IdRow, ScoreRow>(toKeys.Append(model));
        var path = Path.Combine(_root.Path, "model.zip");
        _ml.Model.Save(toKeys.Append(model), View(trainRows).Schema, path);
        var reloaded = Contexts.New().Model.Load(path, out _).Transform(View(testRows)).GetColumn<float>("Score").ToArray();
        for (int i = 0; i < 12; i++)
        {
            Assert.Equal(expected[i][0], transformed[i], 4);
            Assert.Equal(expected[i][0], engine.Predict(testRows[i]).Score, 4);
            Assert.Equal(expected[i][0], reloaded[i], 4);
        }
    }

    [Fact]
    public void Transform_MissingKey_FailsNamingColumnRowAndMapping()
    {
        var trainRows = Rows(32, seed: 1);
        var toKeys = _ml.Transforms.Conversion.MapValueToKey("Tokens", nameof(IdRow.Words)).Fit(View(trainRows));
        using var model = _ml.Regression.Trainers.Lightning(() => new ColumnsNet([(ColumnKind.Tokens, Vocabulary)], 1, regression: true),
            MultipleInputColumnsTests.Options(_root.Path, nameof(IdRow.Target), "Tokens")).Fit(toKeys.Transform(View(trainRows)));
        var unknown = Rows(2, seed: 3);
        unknown[1].Words[2] = "unseen";

        var scored = model.Transform(toKeys.Transform(View(unknown)));
        // ML.NET's GetColumn reads on worker threads and wraps the error; the innermost is the reader's.
        var error = Assert.ThrowsAny<Exception>(() => scored.GetColumn<float>("Score").ToArray());
        while (error.InnerException is { } inner) error = inner;
        Assert.IsType<InvalidOperationException>(error);
        Assert.Contains($"Column 'Tokens' (Vector<Key<UInt32, 0-{Vocabulary - 1}>, {Length}>): row 1 has a missing key at slot 2; the module gets key k as id k - 1", error.Message);
    }

    [Fact]
    public void Fit_VectorOfInt32_FailsNamingColumnTypeAndWhatIsAllowed()
    {
        var data = View(Rows(8, seed: 1)).Let(d => _ml.Transforms.Conversion.ConvertType("Ids", "Ids", DataKind.Int32).Fit(d).Transform(d));
        var trainer = _ml.Regression.Trainers.Lightning(() => new ColumnsNet([(ColumnKind.Tokens, Vocabulary)], 1, regression: true),
            MultipleInputColumnsTests.Options(_root.Path, nameof(IdRow.Target), "Ids"));

        var error = Assert.Throws<ArgumentOutOfRangeException>(() => trainer.Fit(data));
        Assert.Contains("Schema mismatch for input column 'Ids': expected Vector<Single>, Vector<Int64> or Vector<Key<UInt32>> of known size, a variable-length Vector<Single> or Vector<Int64>, or an Image of known size, got Vector<Int32, 4>", error.Message);
    }
}
