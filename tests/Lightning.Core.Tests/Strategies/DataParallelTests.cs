using Lightning.Testing;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Strategies;

public class DataParallelTests
{
    private static TrainerOptions Quiet(TempDirectory root) => TestTrainer.Quiet(root) with { NumSanityValSteps = 0, Accelerator = "cpu", MaxEpochs = 1 };

    [Theory]
    [InlineData("32-true", 1, 8)]
    [InlineData("64-true", 1, 8)]
    [InlineData("32-true", 2, 8)]
    [InlineData("64-true", 2, 8)]
    [InlineData("32-true", 1, 5)]
    public void TwoReplicasOnBatchesOf2B_MatchOneDeviceOnTheSameBatches(string precision, int accumulate, int rows)
    {
        using var root = new TempDirectory();
        var batches = RandomBatches.Create(20, batchSize: rows, features: 16, seed: 5);

        var single = Train(Quiet(root) with { Precision = precision, AccumulateGradBatches = accumulate }, batches);
        var parallel = Train(Quiet(root) with { Precision = precision, AccumulateGradBatches = accumulate, Strategy = "dp", Devices = 2 }, batches);

        Assert.Equal(20 / accumulate, parallel.Trainer.GlobalStep);
        foreach (var (name, weight) in single.Model.state_dict())
        {
            var other = parallel.Model.state_dict()[name];
            var gap = (weight - other).abs().max().ToDouble();
            Assert.True(gap < 1e-5, $"{name} differs by {gap} ({precision}, accumulate {accumulate}, rows {rows})");
        }
    }

    [Fact]
    public void Bf16Mixed_TwoReplicas_StayWithinBf16RoundingOfOneDevice()
    {
        using var root = new TempDirectory();
        var batches = RandomBatches.Create(20, batchSize: 8, features: 16, seed: 5);
        var single = Train(Quiet(root) with { Precision = "bf16-mixed" }, batches);
        var parallel = Train(Quiet(root) with { Precision = "bf16-mixed", Strategy = "dp", Devices = 2 }, batches);

        // bfloat16 keeps 8 bits of mantissa and its rounding depends on how rows are batched: 1e-5 is out of reach.
        foreach (var (name, weight) in single.Model.state_dict())
            Assert.True((weight - parallel.Model.state_dict()[name]).abs().max().ToDouble() < 5e-3, name);
    }

    [Fact]
    public void LoggedValues_AreReducedAcrossReplicas()
    {
        using var root = new TempDirectory();
        // 7 rows split in unequal chunks: only a mean weighted by chunk size equals the mean over the whole batch.
        var batches = RandomBatches.Create(1, batchSize: 7, features: 16, seed: 2);
        var parallel = Train(Quiet(root) with { Strategy = "dp", Devices = 3 }, batches);
        var single = Train(Quiet(root), batches);

        Assert.Equal(batches[0].mean().ToDouble(), single.Trainer.CallbackMetrics["input_mean"], 6);
        Assert.Equal(batches[0].mean().ToDouble(), parallel.Trainer.CallbackMetrics["input_mean"], 6);
        var sizes = parallel.Model.ReplicaBatchSizes.ToArray();
        Assert.Equal(7, sizes.Sum());
        Assert.True(sizes.Distinct().Count() > 1, $"the replicas' chunks should differ in size: {string.Join(", ", sizes)}");
        Assert.Equal(new[] { 7 }, single.Model.ReplicaBatchSizes);
    }

    [Fact]
    public void ManualOptimization_IsRefusedWithDp()
    {
        using var root = new TempDirectory();
        var trainer = new Trainer(Quiet(root) with { Strategy = "dp", Devices = 2 });
        var error = Assert.Throws<NotSupportedException>(() => trainer.Fit(new ManualModel(), RandomBatches.Create(2)));
        Assert.Contains("Strategy \"dp\"", error.Message);
    }

    [Fact]
    public void SingleDeviceStrategy_WithTwoDevices_IsRefused()
    {
        var error = Assert.Throws<ArgumentException>(() => new Trainer(new TrainerOptions { Accelerator = "cpu", Strategy = "single_device", Devices = 2 }));
        Assert.Contains("runs on one device, but Devices = 2 asks for 2", error.Message);
    }

    private static (Regressor Model, Trainer Trainer) Train(TrainerOptions options, IReadOnlyList<Tensor> batches)
    {
        manual_seed(11);
        var model = new Regressor();
        var trainer = new Trainer(options);
        trainer.Fit(model, batches);
        return (model, trainer);
    }

    private sealed class Regressor : LightningModule<Tensor>
    {
        private readonly Sequential net = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 1));
        private readonly System.Collections.Concurrent.ConcurrentBag<int> _sizes = [];

        public Regressor() : base(nameof(Regressor)) => RegisterComponents();

        public IEnumerable<int> ReplicaBatchSizes => _sizes;

        public override Tensor? TrainingStep(Tensor batch, int batchIdx)
        {
            _sizes.Add((int)batch.shape[0]);
            Log("input_mean", batch.mean());
            var target = batch.sum(1, keepdim: true);
            return nn.functional.mse_loss(net.forward(batch).to(target.dtype), target);
        }

        public override OptimizerConfiguration ConfigureOptimizers() => optim.SGD(parameters(), 0.05);
    }

    private sealed class ManualModel : BoringModel
    {
        public ManualModel() => AutomaticOptimization = false;
    }
}
