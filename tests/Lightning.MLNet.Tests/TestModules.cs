using Lightning.Onnx;
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.MLNet.Tests;

/// <summary>
/// A small MLP: cross entropy over class scores (multiclass), MSE on one output (regression) or the log loss of one logit
/// (binary).
/// </summary>
internal sealed class Mlp : LightningModule<IList<Tensor>>, IOnnxExportable
{
    private readonly nn.Module<Tensor, Tensor> net;
    private readonly bool regression;
    private readonly bool binary;

    public Mlp(int inputs, int outputs, bool regression = false, double lr = 0.01, bool binary = false) : base(nameof(Mlp))
    {
        net = nn.Sequential(nn.Linear(inputs, 32), nn.ReLU(), nn.Linear(32, outputs));
        this.regression = regression;
        this.binary = binary;
        Lr = lr;
        RegisterComponents();
    }

    public double Lr { get; }

    /// <summary>Called at each training step.</summary>
    public Action? OnStep { get; init; }

    public Tensor Forward(Tensor x) => net.forward(x);

    public IReadOnlyList<OnnxValue> ExportOnnx(OnnxGraph graph, IReadOnlyList<OnnxValue> inputs) => [graph.Call(net, inputs[0])];

    public override Tensor TrainingStep(IList<Tensor> batch, int batchIdx)
    {
        OnStep?.Invoke();
        var loss = Loss(batch);
        Log("train_loss", loss);
        return loss;
    }

    public override void ValidationStep(IList<Tensor> batch, int batchIdx) => Log("val_loss", Loss(batch));

    private Tensor Loss(IList<Tensor> batch)
    {
        var output = net.forward(batch[0]);
        if (regression) return nn.functional.mse_loss(output.squeeze(1), batch[1]);
        // The first output is the logit (a module of more outputs trains, so its export can be refused).
        if (binary) return nn.functional.binary_cross_entropy_with_logits(output.select(1, 0), batch[1]);
        return nn.functional.cross_entropy(output, batch[1]);
    }

    public override OptimizerConfiguration ConfigureOptimizers() => optim.Adam(parameters(), Lr);
}

/// <summary>A row of generated data.</summary>
public sealed class Row
{
    [VectorType(Data.FeatureCount)]
    public float[] Features { get; set; } = [];

    /// <summary>The zero-based class; as a key column, LoadFromEnumerable stores it as key value <c>Class + 1</c>.</summary>
    public uint Class { get; set; }

    public float Target { get; set; }

    /// <summary>Whether class 0 scores above class 1: a linearly separable binary label.</summary>
    public bool Positive { get; set; }
}

internal static class Data
{
    public const int FeatureCount = 20;
    public const int ClassCount = 3;

    /// <summary>
    /// Three linearly separable classes (class c = argmax of three fixed linear scores) and a linear target with
    /// a little noise.
    /// </summary>
    public static List<Row> Rows(int count, int seed)
    {
        var weights = new Random(42);
        var w = Enumerable.Range(0, ClassCount).Select(_ => Enumerable.Range(0, FeatureCount).Select(_ => (float)(weights.NextDouble() * 2 - 1)).ToArray()).ToArray();
        var r = Enumerable.Range(0, FeatureCount).Select(_ => (float)(weights.NextDouble() * 2 - 1)).ToArray();
        var random = new Random(seed);
        return Enumerable.Range(0, count).Select(_ =>
        {
            var x = Enumerable.Range(0, FeatureCount).Select(_ => (float)(random.NextDouble() * 2 - 1)).ToArray();
            var scores = w.Select(wc => wc.Zip(x, (a, b) => a * b).Sum()).ToArray();
            return new Row
            {
                Features = x,
                Class = (uint)Array.IndexOf(scores, scores.Max()),
                Target = r.Zip(x, (a, b) => a * b).Sum() + 0.5f + (float)(random.NextDouble() - 0.5) * 0.05f,
                Positive = scores[0] > scores[1],
            };
        }).ToList();
    }

    /// <summary>The rows with Class as a key of <see cref="ClassCount"/> values.</summary>
    public static IDataView View(MLContext mlContext, IEnumerable<Row> rows)
    {
        var schema = SchemaDefinition.Create(typeof(Row));
        schema[nameof(Row.Class)].ColumnType = new KeyDataViewType(typeof(uint), ClassCount);
        return mlContext.Data.LoadFromEnumerable(rows, schema);
    }
}

internal static class Contexts
{
    /// <summary>A seeded context that loads saved Lightning models (their scalar outputs are a CustomMapping of Lightning.MLNet).</summary>
    public static MLContext New(int seed = 0)
    {
        var ml = new MLContext(seed);
        ml.ComponentCatalog.RegisterAssembly(typeof(LightningCatalog).Assembly);
        return ml;
    }
}

internal static class SchemaShapes
{
    /// <summary>SchemaShape.Create is internal to ML.NET (pipelines make shapes themselves); tests reach it by reflection.</summary>
    public static SchemaShape Of(DataViewSchema schema) =>
        (SchemaShape)typeof(SchemaShape).GetMethod("Create", System.Reflection.BindingFlags.Static | System.Reflection.BindingFlags.NonPublic | System.Reflection.BindingFlags.Public, [typeof(DataViewSchema)])!
            .Invoke(null, [schema])!;
}
