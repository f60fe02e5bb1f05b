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
        new Trainer(Quiet(root) with { MaxEpochs = 2, GradientClipVal = 0.05 }).Fit(reference, batches);

        manual_seed(5);
        var model = new BoringModel();
        var strategy = new MicroBatchStrategy();
        var precision = new StaticLossScale(1024);
        var trainer = new Trainer(Quiet(root) with { MaxEpochs = 2, GradientClipVal = 0.05, Strategy = strategy, Precision = precision });
        trainer.Fit(model, batches);

        Assert.Same(strategy, trainer.Strategy);
        Assert.Same(precision, trainer.Strategy.Precision);
        Assert.Equal("static-1024", trainer.Precision);
        Assert.Equal(12L, trainer.GlobalStep);
        // Every step ran through both plugins: two micro-batches each, the loss scaled, the gradients unscaled once, before clipping.
        Assert.Equal(24, strategy.MicroBatches);
        Assert.Equal(12, precision.Steps);
        Assert.Equal(["setup", "teardown"], strategy.Stages);
        // Half-batch losses averaged by size give the full batch's gradient, scaled by a power of two and back, then clipped.
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

    [Fact]
    public void GradientsAreReduced_BeforeThePrecisionUnscalesAndChecksThem_InAutomaticAndManualOptimization()
    {
        // Under "ddp" every rank must unscale, check for overflow and clip the same (averaged) gradients.
        foreach (var model in new BoringModel[] { new BoringModel(), new ManualBoringModel() })
        {
            using var root = new TempDirectory();
            var precision = new StaticLossScale(2);
            var strategy = new ReducingStrategy(precision.Events);
            new Trainer(Quiet(root) with { MaxEpochs = 1, Strategy = strategy, Precision = precision }).Fit(model, RandomBatches.Create(2));
            Assert.Equal(["reduce", "unscale", "step", "reduce", "unscale", "step"], precision.Events);
        }
    }

    [Fact]
    public void ManualClipping_GoesThroughThePrecision_WhichUnscalesFirst()
    {
        // Manual optimization clips before the step: the plugin must hand true gradients to the clipping.
        using var root = new TempDirectory();
        var batches = RandomBatches.Create(4, batchSize: 4, seed: 6);
        manual_seed(8);
        var reference = new ClippingManualModel();
        new Trainer(Quiet(root) with { MaxEpochs = 1 }).Fit(reference, batches);
        manual_seed(8);
        var model = new ClippingManualModel();
        new Trainer(Quiet(root) with { MaxEpochs = 1, Precision = new StaticLossScale(1024) }).Fit(model, batches);
        foreach (var (name, weight) in reference.state_dict())
            AssertClose(weight, model.state_dict()[name], name);
    }

    /// <summary>Manual optimization that clips the gradients hard before each step.</summary>
    private sealed class ClippingManualModel : BoringModel
    {
        public ClippingManualModel() => AutomaticOptimization = false;

        public override Tensor? TrainingStep(Tensor batch, int batchIdx)
        {
            var optimizer = Optimizers()[0];
            optimizer.ZeroGrad();
            var loss = base.TrainingStep(batch, batchIdx)!;
            ManualBackward(loss);
            ClipGradients(optimizer.Optimizer, 0.01);
            optimizer.Step();
            return loss;
        }
    }

    [Fact]
    public void OneStrategyOrPrecisionInstance_ForTwoTrainers_IsRefusedNamingTheFix()
    {
        using var root = new TempDirectory();
        var strategy = new MicroBatchStrategy();
        _ = new Trainer(Quiet(root) with { Strategy = strategy });
        var error = Assert.Throws<InvalidOperationException>(() => new Trainer(Quiet(root) with { Strategy = strategy }));
        Assert.Contains("This MicroBatchStrategy instance already serves another Trainer or Fabric; give each its own", error.Message);

        var precision = new StaticLossScale(4);
        _ = new Trainer(Quiet(root) with { Precision = precision });
        error = Assert.Throws<InvalidOperationException>(() => new Lightning.Fabric(new FabricOptions { Precision = precision }));
        Assert.Contains("This StaticLossScale instance already serves another Trainer or Fabric; give each its own", error.Message);
    }

    /// <summary>Steps its optimizer itself, with a closure, as manual optimization does.</summary>
    private sealed class ManualBoringModel : BoringModel
    {
        public ManualBoringModel() => AutomaticOptimization = false;

        public override Tensor? TrainingStep(Tensor batch, int batchIdx)
        {
            var optimizer = Optimizers()[0];
            Tensor? loss = null;
            optimizer.ZeroGrad();
            optimizer.Step(() =>
            {
                loss = base.TrainingStep(batch, batchIdx);
                ManualBackward(loss!);
                return loss;
            });
            return loss;
        }
    }

    /// <summary>Notes when it is asked to make the gradients the same on every process.</summary>
    private sealed class ReducingStrategy(List<string> events) : Strategy
    {
        public override void ReduceGradients(nn.Module module) => events.Add("reduce");
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

        public List<string> Events { get; } = [];

        private bool _unscaled;

        public override void UnscaleGradients(optim.Optimizer optimizer)
        {
            // Called before clipping and again before the step: once per step.
            if (_unscaled) return;
            _unscaled = true;
            Events.Add("unscale");
            using var noGrad = no_grad();
            foreach (var p in optimizer.parameters())
                p.grad?.div_(Scale);
        }

        public override OptimizerStepOutcome OptimizerStep(optim.Optimizer optimizer, Func<Tensor?>? closure, Action? beforeStep)
        {
            // The base runs the closure, unscales, runs the hooks and clipping, and steps.
            var outcome = base.OptimizerStep(optimizer, closure, beforeStep);
            if (outcome == OptimizerStepOutcome.Stepped)
            {
                Events.Add("step");
                Steps++;
            }
            _unscaled = false;
            return outcome;
        }

        public override JsonObject SaveState() => new() { ["scale"] = Scale };

        public override void LoadState(JsonObject state) => Scale = (double?)state["scale"] ?? Scale;
    }
}
