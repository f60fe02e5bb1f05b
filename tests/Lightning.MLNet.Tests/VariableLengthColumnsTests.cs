using Lightning.Testing;
using Microsoft.ML;
using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Lightning.MLNet.Tests;

/// <summary>
/// A variable-length vector column reaches the module as two forward arguments: its values padded with zeros to the
/// batch's longest row (or to MaxLength) and the mask (1 = value, 0 = padding); each row scores as the module's forward
/// on that row alone, in <c>Transform</c>, a prediction engine and the saved model.
/// </summary>
public sealed class VariableLengthColumnsTests : IDisposable
{
    private const int Vocabulary = 10;

    private readonly TempDirectory _root = new();
    private readonly MLContext _ml = Contexts.New();

    public void Dispose() => _root.Dispose();

    public sealed class SequenceRow
    {
        // No VectorType: a variable-length vector of Int64.
        public long[] Ids { get; set; } = [];

        public float Target { get; set; }
    }

    public sealed class ScoreRow
    {
        public float Score { get; set; }
    }

    private static List<SequenceRow> Rows(int count, int seed, int maxLength = 6)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ =>
        {
            long[] ids = [.. Enumerable.Range(0, random.Next(1, maxLength + 1)).Select(_ => (long)random.Next(Vocabulary))];
            return new SequenceRow { Ids = ids, Target = ids.Count(i => i < 3) / (float)ids.Length };
        }).ToList();
    }

    /// <summary>The module's forward on each row alone: its ids [1, len] and a mask of ones.</summary>
    private static float[] RowByRow(ColumnsNet module, IEnumerable<SequenceRow> rows) =>
        [.. rows.Select(r => MultipleInputColumnsTests.Forward(module, tensor(r.Ids, [1, r.Ids.Length]), ones([1, r.Ids.Length], ScalarType.Int64))[0][0])];

    [Theory]
    [InlineData(null)]
    [InlineData(8)]
    public void Regression_VariableLengthIds_PaddedWithMaskAndScoredAsEachRowAlone(int? maxLength)
    {
        var train = _ml.Data.LoadFromEnumerable(Rows(48, seed: 1));
        Assert.Equal(new VectorDataViewType(NumberDataViewType.Int64), train.Schema["Ids"].Type);
        var testRows = Rows(12, seed: 2);
        var test = _ml.Data.LoadFromEnumerable(testRows);
        var batchLengths = new List<long>();
        using var model = _ml.Regression.Trainers.Lightning(
            () => new ColumnsNet([(ColumnKind.MaskedTokens, Vocabulary)], 1, regression: true)
            {
                OnBatch = batch =>
                {
                    var (values, mask) = (batch[0], batch[1]);
                    Assert.Equal(ScalarType.Int64, mask.dtype);
                    Assert.Equal(values.shape, mask.shape);
                    var lengths = mask.sum(1);
                    // Ones then zeros in each row, zeros under the padding, and no longer than the batch's longest row (or MaxLength).
                    Assert.True(mask.eq(arange(mask.shape[1]).unsqueeze(0).lt(lengths.unsqueeze(1)).to_type(ScalarType.Int64)).all().item<bool>());
                    Assert.Equal(0, values.masked_select(mask.eq(0)).abs().sum().item<long>());
                    Assert.Equal(maxLength ?? lengths.max().item<long>(), mask.shape[1]);
                    batchLengths.Add(mask.shape[1]);
                },
            },
            MultipleInputColumnsTests.Options(_root.Path, nameof(SequenceRow.Target), "Ids") with { MaxLength = maxLength, BatchSize = 4 }).Fit(train);
        // Without MaxLength the batches are padded to lengths of their own (24 batches of 4 rows of 1 to 6 ids).
        Assert.Equal(maxLength is null, batchLengths.Distinct().Count() > 1);

        var expected = RowByRow((ColumnsNet)model.Module, testRows);
        var transformed = model.Transform(test).GetColumn<float>("Score").ToArray();
        using var engine = _ml.Model.CreatePredictionEngine<SequenceRow, ScoreRow>(model);
        var path = Path.Combine(_root.Path, "model.zip");
        _ml.Model.Save(model, train.Schema, path);
        var reloaded = Contexts.New().Model.Load(path, out _).Transform(test).GetColumn<float>("Score").ToArray();
        for (int i = 0; i < testRows.Count; i++)
        {
            Assert.Equal(expected[i], transformed[i], 4);
            Assert.Equal(expected[i], engine.Predict(testRows[i]).Score, 4);
            Assert.Equal(expected[i], reloaded[i], 4);
        }
    }

    [Fact]
    public void Fit_RowLongerThanMaxLength_FailsNamingColumnRowAndLength()
    {
        var rows = Rows(8, seed: 1, maxLength: 4);
        rows[5].Ids = [1, 2, 3, 4, 5];
        var trainer = _ml.Regression.Trainers.Lightning(() => new ColumnsNet([(ColumnKind.MaskedTokens, Vocabulary)], 1, regression: true),
            MultipleInputColumnsTests.Options(_root.Path, nameof(SequenceRow.Target), "Ids") with { MaxLength = 4 });

        var error = Assert.Throws<InvalidOperationException>(() => trainer.Fit(_ml.Data.LoadFromEnumerable(rows)));
        Assert.Contains("Column 'Ids' (Vector<Int64>): row 5 has 5 values, more than MaxLength = 4", error.Message);
    }

    [Fact]
    public void Fit_VariableLengthKeys_FailNamingColumnTypeAndWhatIsAllowed()
    {
        var data = _ml.Data.LoadFromEnumerable(Rows(8, seed: 1))
            .Let(d => _ml.Transforms.Conversion.MapValueToKey("Keys", "Ids").Fit(d).Transform(d));
        var trainer = _ml.Regression.Trainers.Lightning(() => new ColumnsNet([(ColumnKind.MaskedTokens, Vocabulary)], 1, regression: true),
            MultipleInputColumnsTests.Options(_root.Path, nameof(SequenceRow.Target), "Keys"));

        var error = Assert.Throws<ArgumentOutOfRangeException>(() => trainer.Fit(data));
        Assert.Contains("Schema mismatch for input column 'Keys': expected Vector<Single>, Vector<Int64> or Vector<Key<UInt32>> of known size, a variable-length Vector<Single> or Vector<Int64>, or an Image of known size, got Vector<Key<UInt32, 0-9>>", error.Message);
    }
}
