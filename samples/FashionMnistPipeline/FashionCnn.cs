using Lightning;
using Lightning.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace FashionMnistPipeline;

/// <summary>
/// Two conv + pooling blocks and two linear layers (the dataset's "2 Conv+pooling" baseline with batch norm), narrow
/// (16 and 32 channels) so that a few epochs fit in minutes on two CPU cores. It takes
/// the pipeline's flat <c>Features</c> [batch, 784] and unflattens them to images [batch, 1, 28, 28] itself, so the
/// exported ONNX graph reads the ML.NET column as it is.
/// </summary>
internal sealed class FashionCnn : LightningModule<IList<Tensor>>, IOnnxExportable
{
    private readonly nn.Module<Tensor, Tensor> net;
    private readonly double lr;
    private readonly int epochs;

    public FashionCnn(double lr, int epochs) : base(nameof(FashionCnn))
    {
        net = nn.Sequential(
            nn.Unflatten(1, [1, 28, 28]),
            nn.Conv2d(1, 16, 3, padding: 1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding: 1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.25), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.25), nn.Linear(128, 10));
        this.lr = lr;
        this.epochs = epochs;
        RegisterComponents();
    }

    public IReadOnlyList<OnnxValue> ExportOnnx(OnnxGraph graph, IReadOnlyList<OnnxValue> inputs) => [graph.Call(net, inputs[0])];

    public override Tensor TrainingStep(IList<Tensor> batch, int batchIdx)
    {
        var loss = nn.functional.cross_entropy(net.forward(batch[0]), batch[1]);
        Log("train_loss", loss);
        return loss;
    }

    public override OptimizerConfiguration ConfigureOptimizers()
    {
        var optimizer = optim.Adam(parameters(), lr);
        // One cosine decay over the whole run: the last epochs fine-tune at a small rate, which is worth about a point
        // of test accuracy over a constant rate at this budget.
        return new OptimizerConfiguration(optimizer, optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs));
    }
}
