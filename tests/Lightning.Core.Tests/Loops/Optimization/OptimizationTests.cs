using Lightning.Testing;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Loops.Optimization;

public class OptimizationTests
{
    private static TrainerOptions Quiet(TempDirectory root) => TestTrainer.Quiet(root) with { NumSanityValSteps = 0 };

    private static double Lr(optim.Optimizer optimizer) => ((OptimizerHelper)optimizer).ParamGroups.First().LearningRate;

    [Fact]
    public void EpochScheduler_StepsAfterEveryEpoch()
    {
        using var root = new TempDirectory();
        var model = new ConfiguredModel(m =>
        {
            var opt = optim.SGD(m.parameters(), 1.0);
            return new OptimizerConfiguration(opt, optim.lr_scheduler.StepLR(opt, 1, 0.5));
        });
        var trainer = new Trainer(Quiet(root) with { MaxEpochs = 3 });
        trainer.Fit(model, RandomBatches.Create(2));
        Assert.Equal(0.125, Lr(trainer.Optimizers[0]), 12);
    }

    [Fact]
    public void StepScheduler_WithFrequency_StepsEveryNOptimizerSteps()
    {
        using var root = new TempDirectory();
        var model = new ConfiguredModel(m =>
        {
            var opt = optim.SGD(m.parameters(), 1.0);
            return new OptimizerConfiguration(opt, new LrSchedulerConfig(optim.lr_scheduler.StepLR(opt, 1, 0.5), SchedulerInterval.Step, Frequency: 2));
        });
        var trainer = new Trainer(Quiet(root) with { MaxEpochs = 1 });
        trainer.Fit(model, RandomBatches.Create(6));
        Assert.Equal(0.125, Lr(trainer.Optimizers[0]), 12);
    }

    [Fact]
    public void ReduceLROnPlateau_ReadsTheMonitoredMetric()
    {
        using var root = new TempDirectory();
        var model = new ConfiguredModel(m =>
        {
            var opt = optim.SGD(m.parameters(), 1.0);
            return new OptimizerConfiguration(opt,
                new LrSchedulerConfig(optim.lr_scheduler.ReduceLROnPlateau(opt, factor: 0.1, patience: 0), Monitor: "constant"));
        }, logConstant: true);
        var trainer = new Trainer(Quiet(root) with { MaxEpochs = 3 });
        trainer.Fit(model, RandomBatches.Create(2));
        // The metric never improves after the first epoch: the LR drops after epochs 2 and 3.
        Assert.Equal(0.01, Lr(trainer.Optimizers[0]), 9);
    }

    [Fact]
    public void ReduceLROnPlateau_WithoutMonitor_IsRejected()
    {
        using var root = new TempDirectory();
        var model = new ConfiguredModel(m =>
        {
            var opt = optim.SGD(m.parameters(), 1.0);
            return new OptimizerConfiguration(opt, optim.lr_scheduler.ReduceLROnPlateau(opt));
        });
        var error = Assert.Throws<ArgumentException>(() => new Trainer(Quiet(root)).Fit(model, RandomBatches.Create(1)));
        Assert.Contains("ReduceLROnPlateau scheduler needs Monitor", error.Message);
    }

    [Fact]
    public void MissingMonitoredMetric_ListsTheAvailableOnes()
    {
        using var root = new TempDirectory();
        var model = new ConfiguredModel(m =>
        {
            var opt = optim.SGD(m.parameters(), 1.0);
            return new OptimizerConfiguration(opt, new LrSchedulerConfig(optim.lr_scheduler.ReduceLROnPlateau(opt), Monitor: "val_loss"));
        });
        var error = Assert.Throws<InvalidOperationException>(() => new Trainer(Quiet(root) with { MaxEpochs = 1 }).Fit(model, RandomBatches.Create(1)));
        Assert.Contains("monitors 'val_loss', which was not logged. Available metrics: [train_loss]", error.Message);
    }

    [Fact]
    public void OptimizersAndSchedulersPair_IsAccepted()
    {
        using var root = new TempDirectory();
        var model = new ConfiguredModel(m =>
        {
            var opt = optim.SGD(m.parameters(), 1.0);
            return (new[] { opt }, new LrSchedulerConfig[] { optim.lr_scheduler.StepLR(opt, 1, 0.1) });
        });
        var trainer = new Trainer(Quiet(root) with { MaxEpochs = 1 });
        trainer.Fit(model, RandomBatches.Create(1));
        Assert.Equal(0.1, Lr(trainer.Optimizers[0]), 12);
    }

    [Fact]
    public void NoOptimizer_RunsTrainingStepsWithoutUpdates()
    {
        using var root = new TempDirectory();
        var model = new ConfiguredModel(_ => OptimizerConfiguration.None);
        var before = model.parameters().Select(p => p.clone()).ToList();
        var trainer = new Trainer(Quiet(root) with { MaxEpochs = 1 });
        trainer.Fit(model, RandomBatches.Create(3));
        Assert.Equal(0, trainer.GlobalStep);
        Assert.All(model.parameters().Zip(before), pair => Assert.True(pair.First.equal(pair.Second).all().item<bool>()));
    }

    [Fact]
    public void TwoOptimizersWithAutomaticOptimization_AreRejectedWithTheFix()
    {
        using var root = new TempDirectory();
        var model = new ConfiguredModel(m => new optim.Optimizer[] { optim.SGD(m.parameters(), 0.1), optim.Adam(m.parameters()) });
        var error = Assert.Throws<InvalidOperationException>(() => new Trainer(Quiet(root)).Fit(model, RandomBatches.Create(1)));
        Assert.Contains("Set AutomaticOptimization = false", error.Message);
    }

    [Fact]
    public void NullTrainingStep_SkipsTheOptimizerStep()
    {
        using var root = new TempDirectory();
        var model = new SkipOddBatches();
        var trainer = new Trainer(Quiet(root) with { MaxEpochs = 1 });
        trainer.Fit(model, RandomBatches.Create(6));
        Assert.Equal(3, trainer.GlobalStep);
    }

    [Fact]
    public void ManualOptimization_TwoOptimizersLikeAGan_StepEachAndCountSteps()
    {
        using var root = new TempDirectory();
        var model = new TinyGan();
        var trainer = new Trainer(Quiet(root) with { MaxEpochs = 2, GradientClipVal = null });
        trainer.Fit(model, RandomBatches.Create(3, batchSize: 8, features: 4));

        Assert.Equal(12, trainer.GlobalStep); // two optimizer steps per batch
        Assert.All(model.FrozenWhileGeneratorTrained, frozen => Assert.True(frozen));
        Assert.True(model.DiscriminatorChanged && model.GeneratorChanged);
        Assert.All(model.parameters(), p => Assert.True(p.requires_grad));
    }

    [Fact]
    public void ManualBackward_WithAutomaticOptimization_IsRefused()
    {
        using var root = new TempDirectory();
        var model = new ManualBackwardInAutomatic();
        var error = Assert.Throws<InvalidOperationException>(() => new Trainer(Quiet(root)).Fit(model, RandomBatches.Create(1)));
        Assert.Contains("ManualBackward is for manual optimization", error.Message);
    }

    private sealed class ConfiguredModel(Func<BoringModel, OptimizerConfiguration> configure, bool logConstant = false) : BoringModel
    {
        public override Tensor? TrainingStep(Tensor batch, int batchIdx)
        {
            if (logConstant) Log("constant", 1.0, onStep: false, onEpoch: true);
            return base.TrainingStep(batch, batchIdx);
        }

        public override OptimizerConfiguration ConfigureOptimizers() => configure(this);
    }

    private sealed class SkipOddBatches : BoringModel
    {
        public override Tensor? TrainingStep(Tensor batch, int batchIdx) => batchIdx % 2 == 1 ? null : base.TrainingStep(batch, batchIdx);
    }

    private sealed class ManualBackwardInAutomatic : BoringModel
    {
        public override Tensor? TrainingStep(Tensor batch, int batchIdx)
        {
            ManualBackward(base.TrainingStep(batch, batchIdx)!);
            return null;
        }
    }

    private sealed class TinyGan : LightningModule<Tensor>
    {
        private readonly Sequential generator = nn.Sequential(nn.Linear(2, 4));
        private readonly Sequential discriminator = nn.Sequential(nn.Linear(4, 1));
        private Tensor? _generatorStart, _discriminatorStart;

        public TinyGan() : base(nameof(TinyGan))
        {
            RegisterComponents();
            AutomaticOptimization = false;
        }

        public List<bool> FrozenWhileGeneratorTrained { get; } = [];
        public bool GeneratorChanged => !generator.parameters().First().equal(_generatorStart!).all().item<bool>();
        public bool DiscriminatorChanged => !discriminator.parameters().First().equal(_discriminatorStart!).all().item<bool>();

        public override void OnTrainStart()
        {
            _generatorStart = generator.parameters().First().detach().clone().DetachFromDisposeScope();
            _discriminatorStart = discriminator.parameters().First().detach().clone().DetachFromDisposeScope();
        }

        public override Tensor? TrainingStep(Tensor real, int batchIdx)
        {
            var optimizers = Optimizers();
            var (optG, optD) = (optimizers[0], optimizers[1]);
            var noise = randn(real.shape[0], 2);

            ToggleOptimizer(optG);
            FrozenWhileGeneratorTrained.Add(discriminator.parameters().All(p => !p.requires_grad));
            var generatorLoss = nn.functional.binary_cross_entropy_with_logits(discriminator.forward(generator.forward(noise)), ones(real.shape[0], 1));
            optG.ZeroGrad();
            ManualBackward(generatorLoss);
            optG.Step();
            UntoggleOptimizer(optG);

            ToggleOptimizer(optD);
            var realLoss = nn.functional.binary_cross_entropy_with_logits(discriminator.forward(real), ones(real.shape[0], 1));
            var fakeLoss = nn.functional.binary_cross_entropy_with_logits(discriminator.forward(generator.forward(noise).detach()), zeros(real.shape[0], 1));
            var discriminatorLoss = (realLoss + fakeLoss) / 2;
            optD.ZeroGrad();
            ManualBackward(discriminatorLoss);
            ClipGradients(optD.Optimizer, 1.0);
            optD.Step();
            UntoggleOptimizer(optD);

            Log("g_loss", generatorLoss, progBar: true);
            Log("d_loss", discriminatorLoss, progBar: true);
            return null;
        }

        public override OptimizerConfiguration ConfigureOptimizers() =>
            new optim.Optimizer[] { optim.Adam(generator.parameters(), 0.01), optim.Adam(discriminator.parameters(), 0.01) };
    }
}
