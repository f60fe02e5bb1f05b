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
        var data = RandomBatches.Create(batches);
        var callback = new OnExceptionCheckpoint(root.Combine("crash"), filename: "failed");
        manual_seed(4);
        Assert.Throws<InvalidOperationException>(() => new Trainer(Options(root, 1, callback)).Fit(new FailingModel(FailAt), data));

        var resumed = new RecordingModel();
        new Trainer(Options(root, 1)).Fit(resumed, data, ckptPath: root.Combine("crash", "failed.ckpt"));
        manual_seed(4);
        var uninterrupted = new RecordingModel();
        new Trainer(Options(root, 1)).Fit(uninterrupted, data);

        // The independent reference is one run that never failed: the resumed run trains only the batches the failed
        // one did not reach, and ends with the same weights.
        Assert.Equal(Enumerable.Range(FailAt, batches - FailAt), resumed.Trained);
        Assert.Equal(Enumerable.Range(0, batches), uninterrupted.Trained);
        foreach (var (name, expected) in uninterrupted.state_dict())
            AssertClose(expected, resumed.state_dict()[name], name);
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

    private sealed class RecordingModel : BoringModel
    {
        public List<int> Trained { get; } = [];

        public override Tensor? TrainingStep(Tensor batch, int batchIdx)
        {
            Trained.Add(batchIdx);
            return base.TrainingStep(batch, batchIdx);
        }
    }

    private sealed class FailingModel(int failAt) : BoringModel
    {
        public const string Message = "step failed";

        public override Tensor? TrainingStep(Tensor batch, int batchIdx) =>
            batchIdx == failAt ? throw new InvalidOperationException(Message) : base.TrainingStep(batch, batchIdx);
    }
}
