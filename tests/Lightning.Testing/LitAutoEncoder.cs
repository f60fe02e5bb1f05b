using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Testing;

/// <summary>The autoencoder of Lightning's "learn Lightning in 15 minutes" as its users write it: a training step and an optimizer, no validation step.</summary>
public sealed class LitAutoEncoder : LightningModule<IList<Tensor>>
{
    private readonly nn.Module<Tensor, Tensor> encoder, decoder;

    public LitAutoEncoder() : base(nameof(LitAutoEncoder))
    {
        encoder = nn.Sequential(nn.Linear(28 * 28, 64), nn.ReLU(), nn.Linear(64, 3));
        decoder = nn.Sequential(nn.Linear(3, 64), nn.ReLU(), nn.Linear(64, 28 * 28));
        RegisterComponents();
    }

    public List<double> Losses { get; } = [];

    public override Tensor TrainingStep(IList<Tensor> batch, int batchIdx)
    {
        var x = batch[0].view(batch[0].size(0), -1);
        var loss = nn.functional.mse_loss(decoder.forward(encoder.forward(x)), x);
        Log("train_loss", loss);
        Losses.Add(loss.ToDouble());
        return loss;
    }

    public override OptimizerConfiguration ConfigureOptimizers() => optim.Adam(parameters(), lr: 1e-3);

    /// <summary>Batches shaped like Fashion-MNIST's: [images (n, 1, 28, 28) in [0, 1), labels (n)].</summary>
    public static IReadOnlyList<IList<Tensor>> Batches(int count, int batchSize = 16, long seed = 0)
    {
        using var generator = new Generator((ulong)seed);
        return Enumerable.Range(0, count).Select(_ => (IList<Tensor>)
        [
            rand([batchSize, 1, 28, 28], generator: generator).DetachFromDisposeScope(),
            randint(0, 10, [batchSize], generator: generator).DetachFromDisposeScope(),
        ]).ToList();
    }
}
