using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Testing;

/// <summary>Lightning's <c>BoringModel</c>: Linear(32, 2) trained towards ones with SGD; batches are plain tensors.</summary>
public class BoringModel : LightningModule<Tensor>
{
    private readonly nn.Module<Tensor, Tensor> layer;

    public BoringModel(double lr = 0.1, int inFeatures = 32) : base(nameof(BoringModel))
    {
        layer = nn.Linear(inFeatures, 2);
        Lr = lr;
        SaveHyperparameters(new { lr, inFeatures });
        RegisterComponents();
    }

    public double Lr { get; }

    public Tensor forward(Tensor x) => layer.forward(x);

    public override Tensor? TrainingStep(Tensor batch, int batchIdx)
    {
        var prediction = forward(batch);
        var loss = nn.functional.mse_loss(prediction, ones_like(prediction));
        Log("train_loss", loss);
        return loss;
    }

    public override OptimizerConfiguration ConfigureOptimizers() => optim.SGD(parameters(), Lr);

    /// <summary>The same model with Adam, whose optimizer state (moments, step count) is worth checking in checkpoints.</summary>
    public sealed class WithAdam(double lr = 0.01) : BoringModel(lr)
    {
        public override OptimizerConfiguration ConfigureOptimizers() => optim.Adam(parameters(), Lr);
    }
}

/// <summary>Random batches as Lightning's <c>RandomDataset</c>, made once so every epoch sees the same data.</summary>
public static class RandomBatches
{
    public static IReadOnlyList<Tensor> Create(int count, int batchSize = 2, int features = 32, long seed = 0)
    {
        using var generator = new Generator((ulong)seed);
        return Enumerable.Range(0, count)
            .Select(_ => randn([batchSize, features], generator: generator).DetachFromDisposeScope())
            .ToList();
    }
}
