using System.Text.Json.Nodes;
using Lightning.Checkpoints;
using Lightning.Precision;
using Lightning.Strategies;
using Lightning.Testing;
using TorchSharp;
using static Lightning.Testing.TestTrainer;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Strategies;

/// <summary>
/// A user extends the trainer with a strategy and a precision plugin of their own, written against the public API only
/// and passed as options: neither the trainer nor its loops know them.
/// </summary>
public class UserPluginTests
{
    [Fact]
    public void OwnStrategyAndPrecision_TrainBoringModel_AsTheBuiltInsDo()
    {
        using var root = new TempDirectory();
        var batches = RandomBatches.Create(6, batchSize: 4, seed: 3);

        manual_seed(5);
        var reference = new BoringModel();
        new Trainer(Quiet(root) with { MaxEpochs = 2 }).Fit(reference, batches);

        manual_seed(5);
        var model = new BoringModel();
        var strategy = new MicroBatchStrategy();
        var precision = new StaticLossScale(1024);
        var trainer = new Trainer(Quiet(root) with { MaxEpochs = 2, Strategy = strategy, Precision = precision });
        trainer.Fit(model, batches);

        Assert.Same(strategy, trainer.Strategy);
        Assert.Same(precision, trainer.Strategy.Precision);
        Assert.Equal("static-1024", trainer.Precision);
        Assert.Equal(12L, trainer.GlobalStep);
        // Every step ran through both plugins: two micro-batches each, the loss scaled, the gradients unscaled.
        Assert.Equal(24, strategy.MicroBatches);
        Assert.Equal(12, precision.Steps);
        Assert.Equal(["setup", "teardown"], strategy.Stages);
        // Half-batch losses averaged by size give the full batch's gradient, scaled by a power of two and back.
        foreach (var (name, weight) in reference.state_dict())
            AssertClose(weight, model.state_dict()[name], name);
    }

    [Fact]
    public void OwnPrecision_KeepsItsStateInTheCheckpoint_AndGetsItBackOnResume()
    {
        using var root = new TempDirectory();
        var path = root.Combine("scaled.ckpt");
        var first = new StaticLossScale(512);
        var trainer = new Trainer(Quiet(root) with { MaxEpochs = 1, Precision = first });
        trainer.Fit(new BoringModel(), RandomBatches.Create(2));
        trainer.SaveCheckpoint(path);

        Assert.Equal(512, (double)Checkpoint.Load(path).Callbacks[nameof(StaticLossScale)]!["scale"]!);
        var resumed = new StaticLossScale(1);
        new Trainer(Quiet(root) with { MaxEpochs = 2, Precision = resumed }).Fit(new BoringModel(), RandomBatches.Create(2), ckptPath: path);
        Assert.Equal(512, resumed.Scale);
    }

    /// <summary>Runs each training step as two micro-batches, one after the other, and returns their size-weighted mean loss.</summary>
    private sealed class MicroBatchStrategy : Strategy
    {
        public int MicroBatches { get; private set; }
        public List<string> Stages { get; } = [];

        public override void Setup(Trainer trainer)
        {
            Stages.Add("setup");
            base.Setup(trainer);
        }

        public override void Teardown() => Stages.Add("teardown");

        public override Tensor? TrainingStep<TBatch>(LightningModule<TBatch> module, TBatch batch, int batchIdx)
        {
            if (batch is not Tensor whole) return base.TrainingStep(module, batch, batchIdx);
            var rows = whole.shape[0];
            Tensor? total = null;
            foreach (var part in whole.tensor_split(2))
            {
                MicroBatches++;
                var loss = base.TrainingStep(module, (TBatch)(object)part, batchIdx)!;
                var weighted = loss * ((double)part.shape[0] / rows);
                total = total is null ? weighted : total + weighted;
            }
            return total;
        }
    }

    /// <summary>Loss scaling by a fixed power of two: the loss is scaled before backward and the gradients divided back before the step.</summary>
    private sealed class StaticLossScale(double scale) : PrecisionPlugin
    {
        public double Scale { get; private set; } = scale;
        public int Steps { get; private set; }

        public override string Name => $"static-{Scale}";

        public override Tensor PreBackward(Tensor loss) => loss * Scale;

        public override void UnscaleGradients(optim.Optimizer optimizer)
        {
            using var noGrad = no_grad();
            foreach (var p in optimizer.parameters())
                p.grad?.div_(Scale);
        }

        public override bool OptimizerStep(optim.Optimizer optimizer, Func<Tensor?>? closure, Action? beforeStep)
        {
            if (closure is not null && closure() is null) return false;
            UnscaleGradients(optimizer);
            beforeStep?.Invoke();
            optimizer.step();
            Steps++;
            return true;
        }

        public override JsonObject SaveState() => new() { ["scale"] = Scale };

        public override void LoadState(JsonObject state) => Scale = (double?)state["scale"] ?? Scale;
    }
}
