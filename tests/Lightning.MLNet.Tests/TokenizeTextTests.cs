using System.Text;
using Lightning.Testing;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Tokenizers;
using static TorchSharp.torch;

namespace Lightning.MLNet.Tests;

/// <summary>
/// <c>TokenizeText</c> turns a text column into the ids a Microsoft.ML.Tokenizers tokenizer gives (cut and padded to a
/// maximum length with a mask, or variable length), which the Lightning trainers take as token-id input columns.
/// </summary>
public sealed class TokenizeTextTests : IDisposable
{
    private const int MaxLength = 6;

    // A small BERT WordPiece vocabulary, written here: no download.
    private static readonly string[] Vocabulary =
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cat", "sat", "on", "mat", "dog", "ran", "far", "##s", "a"];

    private static readonly string[] Words = ["the", "cat", "cats", "sat", "on", "a", "mat", "dog", "dogs", "ran", "far", "bird"];

    private readonly TempDirectory _root = new();
    private readonly MLContext _ml = Contexts.New();
    private readonly Tokenizer _tokenizer = BertTokenizer.Create(new MemoryStream(Encoding.UTF8.GetBytes(string.Join("\n", Vocabulary) + "\n")));

    public void Dispose() => _root.Dispose();

    public sealed class TextRow
    {
        public string Text { get; set; } = "";

        public float Target { get; set; }
    }

    private static List<TextRow> Rows(int count, int seed)
    {
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ =>
        {
            var words = Enumerable.Range(0, random.Next(1, 7)).Select(_ => Words[random.Next(Words.Length)]).ToArray();
            return new TextRow { Text = string.Join(' ', words), Target = words.Count(w => w.StartsWith("dog")) - 0.5f };
        }).ToList();
    }

    [Fact]
    public void TokenizeText_WithMaxLength_GivesTheTokenizersIdsCutPaddedAndMasked()
    {
        var rows = Rows(20, seed: 1);
        var tokenized = _ml.Transforms.TokenizeText(_tokenizer, "Tokens", nameof(TextRow.Text), "Mask", maxLength: MaxLength)
            .Fit(_ml.Data.LoadFromEnumerable(rows)).Transform(_ml.Data.LoadFromEnumerable(rows));

        Assert.Equal(new VectorDataViewType(NumberDataViewType.Int64, MaxLength), tokenized.Schema["Tokens"].Type);
        var ids = tokenized.GetColumn<VBuffer<long>>("Tokens").Select(v => v.DenseValues().ToArray()).ToArray();
        var masks = tokenized.GetColumn<VBuffer<long>>("Mask").Select(v => v.DenseValues().ToArray()).ToArray();
        Assert.Contains(rows, r => _tokenizer.EncodeToIds(r.Text).Count > MaxLength);
        Assert.Contains(rows, r => _tokenizer.EncodeToIds(r.Text).Count < MaxLength);
        for (int i = 0; i < rows.Count; i++)
        {
            var expected = _tokenizer.EncodeToIds(rows[i].Text).Take(MaxLength).Select(id => (long)id).ToArray();
            Assert.Equal([.. expected, .. Enumerable.Repeat(0L, MaxLength - expected.Length)], ids[i]);
            Assert.Equal([.. expected.Select(_ => 1L), .. Enumerable.Repeat(0L, MaxLength - expected.Length)], masks[i]);
        }
    }

    /// <summary>The module's forward on each text's ids alone (cut to <paramref name="maxLength"/>) with a mask of ones.</summary>
    private float[] RowByRow(ColumnsNet module, IEnumerable<TextRow> rows, int? maxLength) =>
        [.. rows.Select(r =>
        {
            long[] ids = [.. _tokenizer.EncodeToIds(r.Text).Take(maxLength ?? int.MaxValue).Select(id => (long)id)];
            return MultipleInputColumnsTests.Forward(module, tensor(ids, [1, ids.Length]), ones([1, ids.Length], ScalarType.Int64))[0][0];
        })];

    [Theory]
    [InlineData(MaxLength)]
    [InlineData(null)]
    public void Regression_TokenizedText_ScoresEqualTheModulesForwardOnTheIds(int? maxLength)
    {
        var trainRows = Rows(48, seed: 1);
        var testRows = Rows(10, seed: 2);
        var tokenize = _ml.Transforms.TokenizeText(_tokenizer, "Tokens", nameof(TextRow.Text), maxLength is null ? null : "Mask", maxLength)
            .Fit(_ml.Data.LoadFromEnumerable(trainRows));
        // With a maximum length the ids and mask are two input columns; without, the trainer pads and masks the ids itself.
        string[] inputs = maxLength is null ? ["Tokens"] : ["Tokens", "Mask"];
        using var model = _ml.Regression.Trainers.Lightning(() => new ColumnsNet([(ColumnKind.MaskedTokens, Vocabulary.Length)], 1, regression: true),
            MultipleInputColumnsTests.Options(_root.Path, nameof(TextRow.Target), inputs)).Fit(tokenize.Transform(_ml.Data.LoadFromEnumerable(trainRows)));

        var expected = RowByRow((ColumnsNet)model.Module, testRows, maxLength);
        var scores = model.Transform(tokenize.Transform(_ml.Data.LoadFromEnumerable(testRows))).GetColumn<float>("Score").ToArray();
        Assert.Equal(testRows.Count, scores.Length);
        for (int i = 0; i < testRows.Count; i++) Assert.Equal(expected[i], scores[i], 4);
    }

    [Fact]
    public void TokenizeText_InputNotText_FailsNamingColumnAndType()
    {
        var data = _ml.Data.LoadFromEnumerable(Rows(4, seed: 1));
        var estimator = _ml.Transforms.TokenizeText(_tokenizer, "Tokens", nameof(TextRow.Target));

        var error = Assert.Throws<ArgumentOutOfRangeException>(() => estimator.Fit(data));
        Assert.Contains("Schema mismatch for input column 'Target': expected Text, got Single", error.Message);
        var shapeError = Assert.Throws<ArgumentOutOfRangeException>(() => estimator.GetOutputSchema(SchemaShapes.Of(data.Schema)));
        Assert.Contains("Schema mismatch for input column 'Target': expected Text, got Single", shapeError.Message);
    }

    [Fact]
    public void TokenizeText_MaskWithoutMaxLengthOrSaved_FailsSayingWhy()
    {
        var mask = Assert.Throws<ArgumentException>(() => _ml.Transforms.TokenizeText(_tokenizer, "Tokens", "Text", "Mask"));
        Assert.Contains("A mask column ('Mask') needs a maxLength", mask.Message);
        var data = _ml.Data.LoadFromEnumerable(Rows(4, seed: 1));
        var transformer = _ml.Transforms.TokenizeText(_tokenizer, "Tokens", "Text", maxLength: 4).Fit(data);
        var save = Assert.Throws<NotSupportedException>(() => _ml.Model.Save(transformer, data.Schema, Path.Combine(_root.Path, "model.zip")));
        Assert.Contains("TokenizeText cannot be saved in an ML.NET model", save.Message);
    }
}
