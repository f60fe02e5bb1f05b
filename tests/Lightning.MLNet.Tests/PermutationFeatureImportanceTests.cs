using Lightning.Testing;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Lightning.MLNet.Tests;

/// <summary>
/// <c>mlContext.&lt;Task&gt;.PermutationFeatureImportance</c> on Lightning models: the targets depend on features 0 and 1
/// only, so permuting them costs the model a lot and permuting the two others nothing.
/// </summary>
public sealed class PermutationFeatureImportanceTests : IDisposable
{
    private const int FeatureCount = 4;
    private readonly TempDirectory _root = new();
    private readonly MLContext _ml = Contexts.New();

    public void Dispose() => _root.Dispose();

    private sealed class Example
    {
        [VectorType(FeatureCount)]
        public float[] Features { get; set; } = [];

        public float Target { get; set; }

        public bool Positive { get; set; }

        public uint Class { get; set; }
    }

    private IDataView Examples(int count, int seed)
    {
        var random = new Random(seed);
        var rows = Enumerable.Range(0, count).Select(_ =>
        {
            var x = Enumerable.Range(0, FeatureCount).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
            return new Example
            {
                Features = x,
                Target = 2 * x[0] - 1.5f * x[1],
                Positive = x[0] + x[1] > 0,
                Class = (x[0] > 0 ? 1u : 0u) + (x[1] > 0 ? 1u : 0u),
            };
        }).ToList();
        var schema = SchemaDefinition.Create(typeof(Example));
        schema[nameof(Example.Class)].ColumnType = new KeyDataViewType(typeof(uint), 3);
        return _ml.Data.LoadFromEnumerable(rows, schema);
    }

    private LightningTrainerOptions Options(string label) => TaskEvaluationTests.Options(_root.Path, label, epochs: 15);

    private static void AssertOnlyTheFirstTwoMatter(IReadOnlyList<double> drops, double least)
    {
        Assert.Equal(FeatureCount, drops.Count);
        Assert.True(drops[0] > least && drops[1] > least, $"drops {string.Join(", ", drops)}");
        Assert.True(Math.Abs(drops[2]) < least / 4 && Math.Abs(drops[3]) < least / 4, $"drops {string.Join(", ", drops)}");
    }

    [Fact]
    public void Regression_Pfi_RanksTheFeaturesTheTargetDependsOn()
    {
        var data = Examples(400, seed: 1);
        using var model = _ml.Regression.Trainers.Lightning(() => new Mlp(FeatureCount, 1, regression: true), Options(nameof(Example.Target))).Fit(data);

        var importance = _ml.Regression.PermutationFeatureImportance(model, data, labelColumnName: nameof(Example.Target), permutationCount: 2);

        // R² falls (the change is negative) when an important feature is permuted.
        AssertOnlyTheFirstTwoMatter([.. importance.Select(m => -m.RSquared.Mean)], least: 0.5);
    }

    [Fact]
    public void Binary_Pfi_RanksTheFeaturesTheLabelDependsOn()
    {
        var data = Examples(400, seed: 1);
        using var model = _ml.BinaryClassification.Trainers.Lightning(() => new Mlp(FeatureCount, 1, binary: true), Options(nameof(Example.Positive))).Fit(data);

        var importance = _ml.BinaryClassification.PermutationFeatureImportance(model, data, labelColumnName: nameof(Example.Positive));

        AssertOnlyTheFirstTwoMatter([.. importance.Select(m => -m.AreaUnderRocCurve.Mean)], least: 0.1);
    }

    [Fact]
    public void Multiclass_Pfi_OfAPipelinesLightningModel_RanksTheFeaturesTheClassDependsOn()
    {
        var data = Examples(400, seed: 1);
        using var model = _ml.Transforms.CopyColumns("Label", nameof(Example.Class))
            .Append(_ml.MulticlassClassification.Trainers.Lightning(() => new Mlp(FeatureCount, 3), Options("Label")))
            .Fit(data);

        // ML.NET's ITransformer overload only finds its own prediction transformers (through an internal interface), so
        // PFI takes the Lightning model, the pipeline's last transformer, on the rows the transforms before it make.
        var importance = _ml.MulticlassClassification.PermutationFeatureImportance(model.LastTransformer, model.Transform(data));

        AssertOnlyTheFirstTwoMatter([.. importance.Select(m => -m.MicroAccuracy.Mean)], least: 0.1);
    }
}
