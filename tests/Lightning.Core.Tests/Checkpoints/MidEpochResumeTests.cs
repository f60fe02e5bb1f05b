using Lightning.Callbacks;
using Lightning.Testing;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Checkpoints;

/// <summary>
/// A checkpoint written inside an epoch resumes to what the uninterrupted run reached, for the training modes whose
/// state lives outside the weights: a scheduler stepped per optimizer step, gradient accumulation, manual optimization.
/// </summary>
public class MidEpochResumeTests
{
    private static TrainerOptions Quiet(TempDirectory root) => TestTrainer.Quiet(root) with { NumSanityValSteps = 0, MaxEpochs = 2 };

    [Fact]
    public void StepIntervalScheduler_ResumedMidEpoch_FollowsTheUninterruptedLearningRatesAndWeights()
    {
        using var root = new TempDirectory();
        var path = root.Combine("step-7.ckpt");
        var straightRates = new RecordRates();
        var straight = Train(Quiet(root) with { Callbacks = [straightRates, new SaveAtBatch(6, path)] }, Mode.StepScheduler);
        var resumedRates = new RecordRates();

        var resumed = Train(Quiet(root) with { Callbacks = [resumedRates] }, Mode.StepScheduler, path, seed: 77);

        Assert.Equal(20, straightRates.Rates.Count);   // 2 epochs of 10 batches, one optimizer step each
        Assert.True(straightRates.Rates.Distinct().Count() > 3, "the scheduler never changed the rate");
        Assert.Equal(straightRates.Rates.Skip(7), resumedRates.Rates);
        Assert.Equal(ResumeTests.Weights(straight.Model), ResumeTests.Weights(resumed.Model));
        Assert.Equal(straight.Trainer.GlobalStep, resumed.Trainer.GlobalStep);
    }

    [Fact]
    public void GradientAccumulation_ResumedAtAStepBoundaryInsideTheEpoch_EqualsTheUninterruptedRun()
    {
        using var root = new TempDirectory();
        var path = root.Combine("after-batch-6.ckpt");
        // Batches 0-5 make optimizer steps 1-3; the checkpoint follows the 3rd step, 4 batches before the epoch's end.
        var straight = Train(Quiet(root) with { AccumulateGradBatches = 2, Callbacks = [new SaveAtBatch(5, path)] }, Mode.Automatic);

        var resumed = Train(Quiet(root) with { AccumulateGradBatches = 2 }, Mode.Automatic, path, seed: 77);

        Assert.Equal(3, Lightning.Checkpoints.Checkpoint.Load(path).GlobalStep);
        Assert.Equal(10, straight.Trainer.GlobalStep);   // 20 batches, one step per 2
        Assert.Equal(straight.Trainer.GlobalStep, resumed.Trainer.GlobalStep);
        Assert.Equal(ResumeTests.Weights(straight.Model), ResumeTests.Weights(resumed.Model));
        Assert.Equal(14, resumed.Model.TrainedBatches);   // batches 6-9 of epoch 0, then all 10 of epoch 1
    }

    [Fact]
    public void ManualOptimization_ResumedMidEpoch_EqualsTheUninterruptedRun()
    {
        using var root = new TempDirectory();
        var path = root.Combine("after-batch-4.ckpt");
        var straight = Train(Quiet(root) with { Callbacks = [new SaveAtBatch(4, path)] }, Mode.Manual);

        var resumed = Train(Quiet(root), Mode.Manual, path, seed: 77);

        Assert.Equal(5, Lightning.Checkpoints.Checkpoint.Load(path).GlobalStep);
        Assert.Equal(20, straight.Trainer.GlobalStep);
        Assert.Equal(straight.Trainer.GlobalStep, resumed.Trainer.GlobalStep);
        Assert.Equal(15, resumed.Model.TrainedBatches);
        Assert.Equal(ResumeTests.Weights(straight.Model), ResumeTests.Weights(resumed.Model));
    }

    private enum Mode { Automatic, StepScheduler, Manual }

    private static (Regressor Model, Trainer Trainer) Train(TrainerOptions options, Mode mode, string? ckptPath = null, int seed = 0)
    {
        manual_seed(seed);
        var model = new Regressor(mode);
        var trainer = new Trainer(options);
        trainer.Fit(model, ResumeTests.Loader(), ckptPath: ckptPath);
        return (model, trainer);
    }

    /// <summary>Adam (moments and step count in its state); per-step StepLR or manual steps by mode.</summary>
    private sealed class Regressor : LightningModule<IList<Tensor>>
    {
        private readonly Sequential net = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 1));
        private readonly Mode _mode;

        public Regressor(Mode mode) : base(nameof(Regressor))
        {
            _mode = mode;
            AutomaticOptimization = mode != Mode.Manual;
            RegisterComponents();
        }

        public int TrainedBatches { get; private set; }

        public override Tensor? TrainingStep(IList<Tensor> batch, int batchIdx)
        {
            TrainedBatches++;
            var loss = nn.functional.mse_loss(net.forward(batch[0]), batch[1]);
            if (_mode != Mode.Manual) return loss;
            var optimizer = Optimizers()[0];
            optimizer.ZeroGrad();
            ManualBackward(loss);
            optimizer.Step();
            return null;
        }

        public override OptimizerConfiguration ConfigureOptimizers()
        {
            var optimizer = optim.Adam(parameters(), 0.01);
            return _mode == Mode.StepScheduler
                ? new OptimizerConfiguration(optimizer, new LrSchedulerConfig(optim.lr_scheduler.StepLR(optimizer, 3, 0.5), SchedulerInterval.Step))
                : optimizer;
        }
    }

    /// <summary>The learning rate the optimizer used for each batch of the run.</summary>
    private sealed class RecordRates : Callback
    {
        public List<double> Rates { get; } = [];

        public override void OnTrainBatchStart(Trainer trainer, LightningModule module, object? batch, int batchIdx) =>
            Rates.Add(((OptimizerHelper)trainer.Optimizers[0]).ParamGroups.First().LearningRate);
    }

    /// <summary>Saves once, after batch <c>batchIdx</c> of the first epoch.</summary>
    private sealed class SaveAtBatch(int batchIdx, string path) : Callback
    {
        public override void OnTrainBatchEnd(Trainer trainer, LightningModule module, double? loss, object? batch, int index)
        {
            if (trainer.CurrentEpoch == 0 && index == batchIdx) trainer.SaveCheckpoint(path);
        }
    }
}
