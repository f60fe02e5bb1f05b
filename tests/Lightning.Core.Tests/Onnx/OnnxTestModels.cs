using Lightning.Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Onnx;

/// <summary>The quickstart's autoencoder; its ONNX graph returns the embedding and the reconstruction.</summary>
internal sealed class QuickStartAutoEncoder : LightningModule<IList<Tensor>>, IOnnxExportable
{
    private readonly nn.Module<Tensor, Tensor> encoder;
    private readonly nn.Module<Tensor, Tensor> decoder;

    public QuickStartAutoEncoder(int hidden = 64, double lr = 1e-3) : base(nameof(QuickStartAutoEncoder))
    {
        encoder = nn.Sequential(nn.Linear(28 * 28, hidden), nn.ReLU(), nn.Linear(hidden, 3));
        decoder = nn.Sequential(nn.Linear(3, hidden), nn.ReLU(), nn.Linear(hidden, 28 * 28));
        Lr = lr;
        SaveHyperparameters(new { hidden, lr });
        RegisterComponents();
    }

    public double Lr { get; }

    public Tensor[] Forward(Tensor x)
    {
        var z = encoder.forward(x);
        return [z, decoder.forward(z)];
    }

    public IReadOnlyList<OnnxValue> ExportOnnx(OnnxGraph graph, IReadOnlyList<OnnxValue> inputs)
    {
        var z = graph.Call(encoder, inputs[0]);
        return [z, graph.Call(decoder, z)];
    }

    public override Tensor TrainingStep(IList<Tensor> batch, int batchIdx)
    {
        var x = batch[0].view(batch[0].size(0), -1);
        var loss = nn.functional.mse_loss(decoder.forward(encoder.forward(x)), x);
        Log("train_loss", loss);
        return loss;
    }

    public override OptimizerConfiguration ConfigureOptimizers() => optim.Adam(parameters(), Lr);
}

internal static class FashionMnistCnn
{
    /// <summary>Two conv blocks with BatchNorm, then a classifier with dropout, for [batch, 1, 28, 28] images.</summary>
    public static Sequential Create() => nn.Sequential(
        nn.Conv2d(1, 16, 3, padding: 1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding: 1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Dropout(0.25), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10));
}

/// <summary>A bidirectional two-layer LSTM over [batch, time, features], classifying from the last time step.</summary>
internal sealed class LstmClassifier : nn.Module<Tensor, Tensor>, IOnnxExportable
{
    private readonly LSTM lstm = nn.LSTM(8, 16, numLayers: 2, batchFirst: true, bidirectional: true);
    private readonly nn.Module<Tensor, Tensor> head = nn.Sequential(nn.Linear(32, 5), nn.LogSoftmax(-1));

    public LstmClassifier() : base(nameof(LstmClassifier)) => RegisterComponents();

    public override Tensor forward(Tensor x) => head.forward(lstm.forward(x).Item1.select(1, -1));

    public IReadOnlyList<OnnxValue> ExportOnnx(OnnxGraph graph, IReadOnlyList<OnnxValue> inputs)
    {
        var sequence = graph.Call(lstm, inputs[0])[0];
        var last = graph.Node("Gather", [sequence, graph.Initializer(tensor(-1L), "last_step")],
            new Dictionary<string, object> { ["axis"] = 1L }, evaluate: s => s[0].select(1, -1));
        return [graph.Call(head, last)];
    }
}

/// <summary>A forward that is more than a chain: a ModuleList of residual blocks, a concatenation and a reshape.</summary>
internal sealed class ResidualStack : nn.Module<Tensor, Tensor>, IOnnxExportable
{
    private readonly ModuleList<nn.Module<Tensor, Tensor>> blocks = nn.ModuleList<nn.Module<Tensor, Tensor>>(
        nn.Sequential(nn.Linear(6, 6), nn.Tanh()), nn.Sequential(nn.Linear(6, 6), nn.SiLU()));
    private readonly ModuleDict<nn.Module<Tensor, Tensor>> heads = nn.ModuleDict<nn.Module<Tensor, Tensor>>(
        ("left", nn.Linear(6, 4)), ("right", nn.Linear(6, 4)));

    public ResidualStack() : base(nameof(ResidualStack)) => RegisterComponents();

    public override Tensor forward(Tensor x)
    {
        foreach (var block in blocks) x = x + block.forward(x);
        var both = cat([heads["left"].forward(x), heads["right"].forward(x)], 1);
        return both.reshape(both.size(0), 2, 4) * x[.., ..4].reshape(x.size(0), 1, 4) - x[.., ..4].reshape(x.size(0), 1, 4);
    }

    public IReadOnlyList<OnnxValue> ExportOnnx(OnnxGraph graph, IReadOnlyList<OnnxValue> inputs)
    {
        var x = inputs[0];
        foreach (var block in blocks) x = graph.Add(x, graph.Call(block, x));
        var both = graph.Concat(1, graph.Call(heads["left"], x), graph.Call(heads["right"], x));
        var firstFour = graph.Node("Slice", [x, graph.Constant(0), graph.Constant(4), graph.Constant(1)],
            evaluate: s => s[0][.., ..4]);
        var column = graph.Reshape(firstFour, 0, 1, 4);
        return [graph.Sub(graph.Mul(graph.Reshape(both, 0, 2, 4), column), column)];
    }
}
