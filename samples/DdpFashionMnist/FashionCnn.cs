using Lightning;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DdpFashionMnist;

/// <summary>Two convolution blocks and a linear classifier over 28x28 grey-scale images; batches are [images, labels].</summary>
public sealed class FashionCnn : LightningModule<IList<Tensor>>
{
    private readonly Sequential net = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding: 1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding: 1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10));

    public FashionCnn() : base(nameof(FashionCnn)) => RegisterComponents();

    public override Tensor? TrainingStep(IList<Tensor> batch, int batchIdx)
    {
        var loss = nn.functional.cross_entropy(net.forward(batch[0]), batch[1]);
        Log("train_loss", loss, progBar: true, syncDist: true);
        return loss;
    }

    public override void ValidationStep(IList<Tensor> batch, int batchIdx)
    {
        var logits = net.forward(batch[0]);
        // Synced across ranks: the epoch means cover every rank's images, as one process would see them.
        Log("val_loss", nn.functional.cross_entropy(logits, batch[1]), syncDist: true);
        Log("val_acc", logits.argmax(1).eq(batch[1]).to(ScalarType.Float32).mean(), syncDist: true);
    }

    public override OptimizerConfiguration ConfigureOptimizers() => optim.Adam(parameters(), 1e-3);
}
