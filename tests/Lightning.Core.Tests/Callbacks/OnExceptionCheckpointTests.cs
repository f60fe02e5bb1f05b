using Lightning.Callbacks;
using Lightning.Checkpoints;
using Lightning.Testing;
using static Lightning.Testing.TestTrainer;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Callbacks;

public class OnExceptionCheckpointTests
{
    private const int FailAt = 3;

    private static TrainerOptions Options(TempDirectory root, int maxEpochs, params Callback[] callbacks) => Quiet(root, callbacks) with { MaxEpochs = maxEpochs };

    [Fact]
    public void StepThrows_WritesTheCheckpoint_AndTheExceptionStillPropagates()
    {
        using var root = new TempDirectory();
        var callback = new OnExceptionCheckpoint(root.Combine("crash"));
        var model = new FailingModel(FailAt);

        var thrown = Assert.Throws<InvalidOperationException>(() => new Trainer(Options(root, 1, callback)).Fit(model, RandomBatches.Create(10)));

        Assert.Equal(FailingModel.Message, thrown.Message);
        Assert.Equal(root.Combine("crash", "on_exception.ckpt"), callback.CheckpointPath);
        var saved = Checkpoint.Load(callback.CheckpointPath);
        Assert.Equal(FailAt, saved.GlobalStep);
        Assert.False(saved.WeightsOnly);
        Assert.Equal(1, saved.OptimizerCount);
    }

    [Fact]
    public void TheCheckpoint_ResumesWhereTheFailureHappened()
    {
        using var root = new TempDirectory();
        const int batches = 6;
        var callback = new OnExceptionCheckpoint(root.Combine("crash"), filename: "failed");
        Assert.Throws<InvalidOperationException>(() =>
            new Trainer(Options(root, 1, callback)).Fit(new FailingModel(FailAt), RandomBatches.Create(batches)));

        var trainer = new Trainer(Options(root, 1));
        trainer.Fit(new BoringModel(), RandomBatches.Create(batches), ckptPath: root.Combine("crash", "failed.ckpt"));

        Assert.Equal(batches, trainer.GlobalStep);
    }

    [Fact]
    public void WithoutAnException_WritesNothing()
    {
        using var root = new TempDirectory();
        var callback = new OnExceptionCheckpoint(root.Combine("crash"));

        new Trainer(Options(root, 1, callback)).Fit(new BoringModel(), RandomBatches.Create(2));

        Assert.False(File.Exists(callback.CheckpointPath));
    }

    [Fact]
    public void InvalidArguments_AreRefused()
    {
        Assert.ThrowsAny<ArgumentException>(() => new OnExceptionCheckpoint(""));
        Assert.ThrowsAny<ArgumentException>(() => new OnExceptionCheckpoint(null!));
        Assert.ThrowsAny<ArgumentException>(() => new OnExceptionCheckpoint("dir", filename: " "));
        Assert.Contains("not a path", Assert.Throws<ArgumentException>(() => new OnExceptionCheckpoint("dir", filename: "a/b")).Message);
    }

    private sealed class FailingModel(int failAt) : BoringModel
    {
        public const string Message = "step failed";

        public override Tensor? TrainingStep(Tensor batch, int batchIdx) =>
            batchIdx == failAt ? throw new InvalidOperationException(Message) : base.TrainingStep(batch, batchIdx);
    }
}
