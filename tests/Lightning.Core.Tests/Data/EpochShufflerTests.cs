using Lightning.Data;
using Lightning.Testing;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Data;

public class EpochShufflerTests
{
    [Fact]
    public void Fit_SetsTheEpochOfTheLoadersShuffler_SoEachEpochHasItsOwnOrder()
    {
        using var root = new TempDirectory();
        var items = arange(12, dtype: float32).reshape(12, 1);
        // One batch per epoch: it holds the epoch's whole order.
        using var loader = utils.data.DataLoader(utils.data.TensorDataset(items, items), 12, new EpochShuffler(12, seed: 5));
        var module = new OrderRecorder();
        var trainer = new Trainer(TestTrainer.Quiet(root) with { MaxEpochs = 3 });

        trainer.Fit(module, loader);

        var expected = Enumerable.Range(0, 3)
            .Select(epoch => new EpochShuffler(12, seed: 5) { Epoch = epoch }.Select(i => (float)i).ToArray())
            .ToList();
        Assert.Equal(expected, module.Orders);
        Assert.NotEqual(module.Orders[0], module.Orders[1]);
    }

    private sealed class OrderRecorder : LightningModule<IList<Tensor>>
    {
        private readonly nn.Module<Tensor, Tensor> layer = nn.Linear(1, 1);

        public OrderRecorder() : base(nameof(OrderRecorder)) => RegisterComponents();

        public List<float[]> Orders { get; } = [];

        public override Tensor TrainingStep(IList<Tensor> batch, int batchIdx)
        {
            Orders.Add(batch[0].flatten().data<float>().ToArray());
            return nn.functional.mse_loss(layer.forward(batch[0]), batch[1]);
        }

        public override OptimizerConfiguration ConfigureOptimizers() => optim.SGD(parameters(), 0.01);
    }
}
