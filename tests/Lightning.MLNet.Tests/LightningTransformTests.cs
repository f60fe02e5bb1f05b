using Lightning.Testing;
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.MLNet.Tests;

/// <summary><c>mlContext.Transforms.Lightning(...)</c>: a vector column mapped through a module, as ML.NET's TestEstimatorCore checks a transform.</summary>
public sealed class LightningTransformTests : IDisposable
{
    private readonly TempDirectory _root = new();
    private readonly MLContext _ml = new(seed: 0);
    private readonly nn.Module<Tensor, Tensor> _encoder;

    public LightningTransformTests()
    {
        manual_seed(5);
        // An autoencoder's encoder: 20 features to a 3-dimensional embedding.
        _encoder = nn.Sequential(nn.Linear(Data.FeatureCount, 8), nn.ReLU(), nn.Linear(8, 3));
    }

    public void Dispose()
    {
        _encoder.Dispose();
        _root.Dispose();
    }

    private static float[][] Column(IDataView data, string name) =>
        data.GetColumn<VBuffer<float>>(name).Select(v => v.DenseValues().ToArray()).ToArray();

    private static float[][] Forward(Func<Tensor, Tensor> forward, List<Row> rows)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var x = tensor(rows.SelectMany(r => r.Features).ToArray(), [rows.Count, Data.FeatureCount]);
        var y = forward(x);
        var width = (int)(y.numel() / rows.Count);
        var values = y.data<float>().ToArray();
        return [.. Enumerable.Range(0, rows.Count).Select(i => values.AsSpan(i * width, width).ToArray())];
    }

    private static void AssertClose(float[][] expected, float[][] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Approx.AssertClose(expected[i], actual[i], what: $"row {i}");
    }

    [Fact]
    public void Transform_Encoder_AddsEmbeddingEqualToTheModulesForward()
    {
        var rows = Data.Rows(100, seed: 1);
        var data = Data.View(_ml, rows);
        using var model = _ml.Transforms.Lightning(_encoder, "Embedding").Fit(data);

        var embedded = model.Transform(data);

        Assert.Equal(new VectorDataViewType(NumberDataViewType.Single, 3), embedded.Schema["Embedding"].Type);
        AssertClose(Forward(_encoder.forward, rows), Column(embedded, "Embedding"));
        // The input columns pass through.
        Assert.Equal(Column(data, nameof(Row.Features)), Column(embedded, nameof(Row.Features)));
    }

    [Fact]
    public void Transform_TrainedLightningModule_MatchesItsForward()
    {
        var rows = Data.Rows(40, seed: 1);
        var data = Data.View(_ml, rows);
        using var mlp = new Mlp(Data.FeatureCount, 4);
        using var model = _ml.Transforms.Lightning(mlp, new LightningTransformOptions
        {
            InputColumnName = nameof(Row.Features), OutputColumnName = "Hidden", TransformBatchSize = 16,
        }).Fit(data);

        AssertClose(Forward(mlp.Forward, rows), Column(model.Transform(data), "Hidden"));
        Assert.Equal(3, model.BatchRuns);
        Assert.Same(mlp, model.Module);
    }

    [Fact]
    public void OutputSchema_PropagatesTheVectorColumn()
    {
        var data = Data.View(_ml, Data.Rows(8, seed: 1));
        var estimator = _ml.Transforms.Lightning(_encoder, "Embedding");

        var shape = estimator.GetOutputSchema(SchemaShapes.Of(data.Schema));
        Assert.Contains(shape, c => c.Name == "Embedding" && c.Kind == SchemaShape.Column.VectorKind.Vector && c.ItemType == NumberDataViewType.Single);

        using var model = estimator.Fit(data);
        var schema = model.GetOutputSchema(data.Schema);
        Assert.Equal(new VectorDataViewType(NumberDataViewType.Single, 3), schema["Embedding"].Type);
        Assert.Equal(schema.Select(c => (c.Name, c.Type)), model.Transform(data).Schema.Select(c => (c.Name, c.Type)));
    }

    [Fact]
    public void SaveLoad_RoundTrip_GivesTheSameEmbedding()
    {
        var data = Data.View(_ml, Data.Rows(30, seed: 1));
        using var model = _ml.Transforms.Lightning(_encoder, "Embedding").Fit(data);
        var path = _root.Combine("encoder.zip");
        _ml.Model.Save(model, data.Schema, path);

        var loaded = _ml.Model.Load(path, out var inputSchema);
        try
        {
            Assert.Equal(data.Schema[nameof(Row.Features)].Type, inputSchema[nameof(Row.Features)].Type);
            var after = loaded.Transform(data);
            Assert.Equal(new VectorDataViewType(NumberDataViewType.Single, 3), after.Schema["Embedding"].Type);
            AssertClose(Column(model.Transform(data), "Embedding"), Column(after, "Embedding"));
        }
        finally
        {
            (loaded as IDisposable)?.Dispose();
        }
    }

    [Fact]
    public void Fit_MissingInputColumn_FailsNamingIt()
    {
        var data = Data.View(_ml, Data.Rows(8, seed: 1));
        var estimator = _ml.Transforms.Lightning(_encoder, "Embedding", inputColumnName: "Pixels");

        var error = Assert.Throws<ArgumentOutOfRangeException>(() => estimator.Fit(data));
        Assert.Contains("Schema mismatch for input column 'Pixels': expected Vector<Single>, Vector<Int64> or Vector<Key<UInt32>> of known size, a variable-length Vector<Single> or Vector<Int64>, or an Image of known size, but the input has no such column", error.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => estimator.GetOutputSchema(SchemaShapes.Of(data.Schema)));
    }

    [Fact]
    public void Fit_ScalarInputColumn_FailsNamingColumnAndType()
    {
        var data = Data.View(_ml, Data.Rows(8, seed: 1));
        var error = Assert.Throws<ArgumentOutOfRangeException>(() =>
            _ml.Transforms.Lightning(_encoder, "Embedding", inputColumnName: nameof(Row.Target)).Fit(data));
        Assert.Contains("Schema mismatch for input column 'Target': expected Vector<Single>, Vector<Int64> or Vector<Key<UInt32>> of known size, a variable-length Vector<Single> or Vector<Int64>, or an Image of known size, got Single", error.Message);
    }

    [Fact]
    public void Transform_InputOfAnotherWidth_FailsWithBothSizes()
    {
        using var model = _ml.Transforms.Lightning(_encoder, "Embedding").Fit(Data.View(_ml, Data.Rows(8, seed: 1)));
        var narrow = _ml.Data.LoadFromEnumerable(Enumerable.Range(0, 4).Select(_ => new LightningTrainerTests.NarrowRow()).ToList());
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => model.Transform(narrow));
        Assert.Contains("Schema mismatch for input column 'Features': expected Vector<Single, 20>, got Vector<Single, 10>", error.Message);
    }

    [Fact]
    public void Options_SameInputAndOutputColumn_Fails()
    {
        var error = Assert.Throws<ArgumentException>(() => _ml.Transforms.Lightning(_encoder, "Features", "Features"));
        Assert.Contains("'Features' is both InputColumnName and OutputColumnName", error.Message);
    }
}
