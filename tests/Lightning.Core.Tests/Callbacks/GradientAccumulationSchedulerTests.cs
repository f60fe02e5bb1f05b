using Lightning.Callbacks;
using Lightning.Testing;
using static Lightning.Testing.TestTrainer;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Callbacks;

public class GradientAccumulationSchedulerTests
{
    private const int BatchesPerEpoch = 8;

    private static TrainerOptions Options(TempDirectory root, int maxEpochs, params Callback[] callbacks) => Quiet(root, callbacks) with { MaxEpochs = maxEpochs };

    private static IReadOnlyList<Tensor> Train => RandomBatches.Create(BatchesPerEpoch, seed: 1);

    private static int StepsPerEpoch(int factor) => (BatchesPerEpoch + factor - 1) / factor;

    [Fact]
    public void Schedule_ChangesTheFactorAndTheNumberOfOptimizerSteps()
    {
        using var root = new TempDirectory();
        var schedule = new Dictionary<int, int> { [0] = 4, [2] = 2, [3] = 1 };
        const int epochs = 4;
        var scheduler = new GradientAccumulationScheduler(schedule);
        var recorder = new RecordEpochs();
        var trainer = new Trainer(Options(root, epochs, scheduler, recorder));

        trainer.Fit(new BoringModel(), Train);

        int[] factors = [4, 4, 2, 1];
        Assert.Equal(factors, recorder.Factors);
        Assert.Equal(factors.Select(StepsPerEpoch), recorder.Steps);
        Assert.Equal(factors.Sum(StepsPerEpoch), trainer.GlobalStep);
    }

    [Fact]
    public void Schedule_WithoutEpochZero_DoesNotAccumulateBeforeTheFirstKey()
    {
        using var root = new TempDirectory();
        var scheduler = new GradientAccumulationScheduler(new Dictionary<int, int> { [1] = 4 });
        var recorder = new RecordEpochs();

        new Trainer(Options(root, 3, scheduler, recorder)).Fit(new BoringModel(), Train);

        Assert.Equal(new[] { 1, 4, 4 }, recorder.Factors);
        Assert.Equal(1, scheduler.Scheduling[0]);
    }

    [Fact]
    public void Accumulation_MatchesOneLargeBatch()
    {
        using var root = new TempDirectory();
        manual_seed(3);
        var accumulated = new BoringModel();
        var reference = new BoringModel();
        reference.load_state_dict(accumulated.state_dict());
        var batches = RandomBatches.Create(4, batchSize: 2, seed: 5);
        using var joined = cat(batches.ToArray(), 0);

        new Trainer(Options(root, 1, new GradientAccumulationScheduler(new Dictionary<int, int> { [0] = 4 }))).Fit(accumulated, batches);
        new Trainer(Options(root, 1)).Fit(reference, [joined]);

        foreach (var (name, weight) in accumulated.state_dict())
            Assert.True(weight.allclose(reference.state_dict()[name], rtol: 1e-5, atol: 1e-6), $"{name} differs from the one-large-batch step");
    }

    [Fact]
    public void GetAccumulateGradBatches_UsesTheLatestKeyAtOrBeforeTheEpoch()
    {
        var scheduler = new GradientAccumulationScheduler(new Dictionary<int, int> { [0] = 8, [4] = 4 });
        Assert.Equal(new[] { 8, 8, 8, 8, 4, 4 }, Enumerable.Range(0, 6).Select(scheduler.GetAccumulateGradBatches));
        Assert.True(scheduler.AccumulatesGradients);
    }

    [Fact]
    public void InvalidSchedules_NameTheProblem()
    {
        Assert.Contains("scheduling is empty", Assert.Throws<ArgumentException>(() => new GradientAccumulationScheduler(new Dictionary<int, int>())).Message);
        Assert.Contains("epoch -1", Assert.Throws<ArgumentOutOfRangeException>(() =>
            new GradientAccumulationScheduler(new Dictionary<int, int> { [-1] = 2 })).Message);
        Assert.Contains("scheduling[2] = 0", Assert.Throws<ArgumentOutOfRangeException>(() =>
            new GradientAccumulationScheduler(new Dictionary<int, int> { [0] = 2, [2] = 0 })).Message);
        Assert.Throws<ArgumentNullException>(() => new GradientAccumulationScheduler(null!));
    }

    [Fact]
    public void TogetherWithTheTrainerFlag_FailsNamingBoth()
    {
        using var root = new TempDirectory();
        var scheduler = new GradientAccumulationScheduler(new Dictionary<int, int> { [0] = 2 });
        var error = Assert.Throws<InvalidOperationException>(() =>
            new Trainer(Options(root, 1, scheduler) with { AccumulateGradBatches = 4 }).Fit(new BoringModel(), Train));
        Assert.Contains("AccumulateGradBatches = 4", error.Message);
        Assert.Contains("GradientAccumulationScheduler", error.Message);
    }

    [Fact]
    public void ManualOptimization_IsRefused()
    {
        using var root = new TempDirectory();
        var scheduler = new GradientAccumulationScheduler(new Dictionary<int, int> { [0] = 2 });
        var error = Assert.Throws<InvalidOperationException>(() => new Trainer(Options(root, 1, scheduler)).Fit(new ManualModel(), Train));
        Assert.Contains("automatic optimization only", error.Message);
    }

    private sealed class RecordEpochs : Callback
    {
        private long _stepsAtStart;

        public List<int> Factors { get; } = [];
        public List<int> Steps { get; } = [];

        public override void OnTrainEpochStart(Trainer trainer, LightningModule module) => _stepsAtStart = trainer.GlobalStep;

        public override void OnTrainEpochEnd(Trainer trainer, LightningModule module)
        {
            Factors.Add(trainer.AccumulateGradBatches);
            Steps.Add((int)(trainer.GlobalStep - _stepsAtStart));
        }
    }

    private sealed class ManualModel : BoringModel
    {
        public ManualModel() => AutomaticOptimization = false;

        public override Tensor? TrainingStep(Tensor batch, int batchIdx) => null;
    }
}
