using Lightning.Callbacks;
using Lightning.Testing;
using TorchSharp;
using TorchSharp.Modules;
using static Lightning.Testing.TestTrainer;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Callbacks;

public class EmaWeightAveragingTests
{
    [Fact]
    public void Fit_FinalWeights_AreTheEmaOfTheWeightsAfterEachStep()
    {
        using var root = new TempDirectory();
        manual_seed(11);
        var model = new BoringModel(lr: 0.2);
        var stepWeights = new List<Dictionary<string, Tensor>>();
        var ema = new EmaWeightAveraging(decay: 0.9);
        var trainer = Trainer(root, maxEpochs: 2, ema, new LambdaCallback(onTrainBatchEnd: (_, m, _, _, _) => stepWeights.Add(Snapshot(m))));

        trainer.Fit(model, RandomBatches.Create(5, seed: 1));

        Assert.Equal(10, stepWeights.Count);
        Assert.Equal(10, ema.AveragedCount);
        var expected = Ema(stepWeights, 0.9);
        foreach (var (name, value) in Snapshot(model))
        {
            AssertClose(expected[name], value, name);
            Assert.False(value.allclose(stepWeights[^1][name]), $"{name} holds the last step's weights, not the average");
        }
    }

    [Fact]
    public void Fit_UpdateEveryNStepsFromAStartStep_UpdatesOnlyOnThoseSteps()
    {
        using var root = new TempDirectory();
        manual_seed(12);
        var model = new BoringModel(lr: 0.2);
        var stepWeights = new List<Dictionary<string, Tensor>>();
        var ema = new EmaWeightAveraging(decay: 0.5, updateEveryNSteps: 2, updateStartingAtStep: 3);
        var trainer = Trainer(root, maxEpochs: 1, ema, new LambdaCallback(onTrainBatchEnd: (_, m, _, _, _) => stepWeights.Add(Snapshot(m))));

        trainer.Fit(model, RandomBatches.Create(10, seed: 2));

        // Zero-based steps 4, 6 and 8: at or after step 3 and divisible by 2.
        Assert.Equal(3, ema.AveragedCount);
        var expected = Ema([stepWeights[4], stepWeights[6], stepWeights[8]], 0.5);
        foreach (var (name, value) in Snapshot(model)) AssertClose(expected[name], value, name);
        Assert.True(ema.ShouldUpdate(stepIdx: 4));
        Assert.False(ema.ShouldUpdate(stepIdx: 5));
        Assert.False(ema.ShouldUpdate(stepIdx: 2));
        Assert.False(ema.ShouldUpdate(epochIdx: 0));
    }

    [Fact]
    public void Fit_ValidationRunsOnTheAverage_AndTrainingContinuesFromTheCurrentWeights()
    {
        using var root = new TempDirectory();
        manual_seed(13);
        var model = new ValidatedModel();
        var stepWeights = new List<Dictionary<string, Tensor>>();
        var validated = new List<Dictionary<string, Tensor>>();
        var beforeValidation = new List<Dictionary<string, Tensor>>();
        var afterValidation = new List<Dictionary<string, Tensor>>();
        var ema = new EmaWeightAveraging(decay: 0.8);
        var trainer = new Trainer(TestTrainer.Quiet(root,
                new LambdaCallback(onValidationStart: (_, m) => beforeValidation.Add(Snapshot(m))),
                ema,
                new LambdaCallback(
                    onTrainBatchEnd: (_, m, _, _, _) => stepWeights.Add(Snapshot(m)),
                    onValidationBatchStart: (_, m, _, _) => validated.Add(Snapshot(m)),
                    onValidationEnd: (_, m) => afterValidation.Add(Snapshot(m))))
            with { MaxEpochs = 2, NumSanityValSteps = 0 });

        trainer.Fit(model, RandomBatches.Create(3, seed: 3), RandomBatches.Create(1, seed: 4));

        Assert.Equal(2, validated.Count);
        for (int epoch = 0; epoch < 2; epoch++)
        {
            var expected = Ema(stepWeights.Take(3 * (epoch + 1)).ToList(), 0.8);
            foreach (var (name, value) in validated[epoch]) AssertClose(expected[name], value, $"epoch {epoch} {name}");
            foreach (var (name, value) in afterValidation[epoch])
                Assert.True(Identical(beforeValidation[epoch][name], value), $"epoch {epoch}: {name} was not swapped back");
        }
    }

    [Fact]
    public void Fit_WithBatchNorm_AveragesTheFloatBuffersAndCopiesTheStepCount()
    {
        using var root = new TempDirectory();
        manual_seed(14);
        var model = new BatchNormModel();
        var stepWeights = new List<Dictionary<string, Tensor>>();
        var trainer = Trainer(root, maxEpochs: 1, new EmaWeightAveraging(decay: 0.7),
            new LambdaCallback(onTrainBatchEnd: (_, m, _, _, _) => stepWeights.Add(Snapshot(m))));

        trainer.Fit(model, RandomBatches.Create(4, batchSize: 8, seed: 5));

        var expected = Ema(stepWeights, 0.7);
        var final = Snapshot(model);
        AssertClose(expected["norm.running_mean"], final["norm.running_mean"], "running_mean");
        AssertClose(expected["norm.running_var"], final["norm.running_var"], "running_var");
        Assert.Equal(4, final["norm.num_batches_tracked"].item<long>());
    }

    [Fact]
    public void Fit_WithoutBufferAveraging_LeavesBuffersAsTrained()
    {
        using var root = new TempDirectory();
        manual_seed(15);
        var model = new BatchNormModel();
        var stepWeights = new List<Dictionary<string, Tensor>>();
        var trainer = Trainer(root, maxEpochs: 1, new EmaWeightAveraging(decay: 0.7, useBuffers: false),
            new LambdaCallback(onTrainBatchEnd: (_, m, _, _, _) => stepWeights.Add(Snapshot(m))));

        trainer.Fit(model, RandomBatches.Create(4, batchSize: 8, seed: 5));

        var final = Snapshot(model);
        Assert.True(Identical(stepWeights[^1]["norm.running_mean"], final["norm.running_mean"]));
        AssertClose(Ema(stepWeights, 0.7)["first.weight"], final["first.weight"], "first.weight");
    }

    [Fact]
    public void Resume_FromAMidFitCheckpoint_EndsWithTheSameWeightsAsTheStraightRun()
    {
        using var root = new TempDirectory();
        var path = root.Combine("ema.ckpt");
        var data = RandomBatches.Create(3, seed: 6);
        manual_seed(16);
        var straight = new BoringModel.WithAdam();
        var saver = new LambdaCallback(onTrainEpochEnd: (t, _) =>
        {
            if (t.CurrentEpoch == 1) t.SaveCheckpoint(path);
        });
        Trainer(root, maxEpochs: 4, new EmaWeightAveraging(decay: 0.9), saver).Fit(straight, data);

        manual_seed(17);
        var resumed = new BoringModel.WithAdam();
        var ema = new EmaWeightAveraging(decay: 0.9);
        Trainer(root, maxEpochs: 4, ema).Fit(resumed, data, ckptPath: path);

        Assert.Equal(12, ema.AveragedCount);
        var expected = Snapshot(straight);
        foreach (var (name, value) in Snapshot(resumed))
            Assert.True(Identical(expected[name], value), $"{name} differs after resume");
    }

    [Fact]
    public void Constructor_InvalidValues_FailNamingOptionValueAndWhatIsAllowed()
    {
        Assert.Contains("decay = 1.5", Assert.Throws<ArgumentOutOfRangeException>(() => new EmaWeightAveraging(decay: 1.5)).Message);
        Assert.Contains("updateEveryNSteps = -1", Assert.Throws<ArgumentOutOfRangeException>(() => new EmaWeightAveraging(updateEveryNSteps: -1)).Message);
        Assert.Contains("updateStartingAtStep = -3", Assert.Throws<ArgumentOutOfRangeException>(() => new EmaWeightAveraging(updateStartingAtStep: -3)).Message);
        Assert.Contains("updateStartingAtEpoch = -1", Assert.Throws<ArgumentOutOfRangeException>(() => new EmaWeightAveraging(updateStartingAtEpoch: -1)).Message);
    }

    [Fact]
    public void ShouldUpdate_WithAStartEpoch_AddsEpochEndUpdatesFromThatEpoch()
    {
        var ema = new EmaWeightAveraging(updateStartingAtEpoch: 2);

        Assert.False(ema.ShouldUpdate(epochIdx: 1));
        Assert.True(ema.ShouldUpdate(epochIdx: 2));
        Assert.True(ema.ShouldUpdate(stepIdx: 0));
    }

    /// <summary>PyTorch's EMA: the first value, then <c>decay * average + (1 - decay) * value</c>.</summary>
    private static Dictionary<string, Tensor> Ema(IReadOnlyList<Dictionary<string, Tensor>> steps, double decay)
    {
        var average = steps[0].ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        foreach (var step in steps.Skip(1))
            foreach (var name in average.Keys.ToList())
                average[name] = average[name].is_floating_point() ? decay * average[name] + (1 - decay) * step[name] : step[name].clone();
        return average;
    }

    private static Trainer Trainer(TempDirectory root, int maxEpochs, params Callback[] callbacks) => new(Quiet(root, callbacks) with { MaxEpochs = maxEpochs });

    private sealed class ValidatedModel : BoringModel
    {
        public ValidatedModel() : base(lr: 0.2) { }

        public override void ValidationStep(Tensor batch, int batchIdx) => Log("val_loss", forward(batch).sum());
    }

    private sealed class BatchNormModel : LightningModule<Tensor>
    {
        private readonly Linear first = nn.Linear(32, 4);
        private readonly BatchNorm1d norm = nn.BatchNorm1d(4);
        private readonly Linear last = nn.Linear(4, 2);

        public BatchNormModel() : base(nameof(BatchNormModel)) => RegisterComponents();

        public override Tensor? TrainingStep(Tensor batch, int batchIdx)
        {
            var prediction = last.forward(nn.functional.relu(norm.forward(first.forward(batch))));
            return nn.functional.mse_loss(prediction, ones_like(prediction));
        }

        public override OptimizerConfiguration ConfigureOptimizers() => optim.SGD(parameters(), 0.1);
    }
}
