using Lightning.Callbacks;
using Lightning.Testing;
using TorchSharp;
using TorchSharp.Modules;
using static Lightning.Testing.TestTrainer;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Callbacks;

public class StochasticWeightAveragingTests
{
    [Fact]
    public void Fit_AveragesTheEpochEndWeightsFromTheStartEpoch_AndAnnealsTheLearningRate()
    {
        using var root = new TempDirectory();
        manual_seed(3);
        var model = new BoringModel(lr: 0.1);
        var swa = new StochasticWeightAveraging(0.05, swaEpochStart: 3, annealingEpochs: 2, SwaAnnealingStrategy.Linear);
        var epochWeights = new List<Dictionary<string, Tensor>>();
        var epochLrs = new List<List<double>>();
        var trainer = Trainer(root, maxEpochs: 6, swa, new LambdaCallback(
            onTrainEpochStart: (_, _) => epochLrs.Add([]),
            onTrainBatchStart: (t, _, _, _) => epochLrs[^1].Add(t.Optimizers[0].ParamGroups.Single().LearningRate),
            onTrainEpochEnd: (_, m) => epochWeights.Add(Snapshot(m))));

        trainer.Fit(model, RandomBatches.Create(4, seed: 1));

        Assert.Equal(2, swa.SwaStart);
        Assert.Equal(5, swa.SwaEnd);
        Assert.Equal(4, swa.AveragedCount);
        // SWALR, linear over 2 epochs from 0.1: alpha 0, 1/2, 1, 1.
        double[] expectedLrs = [0.1, 0.1, 0.1, 0.075, 0.05, 0.05];
        for (int epoch = 0; epoch < 6; epoch++)
            Assert.All(epochLrs[epoch], lr => Assert.Equal(expectedLrs[epoch], lr, 12));
        var final = Snapshot(model);
        foreach (var (name, value) in final)
        {
            using var mean = stack(epochWeights.Skip(2).Select(w => w[name]).ToArray()).mean([0]);
            AssertClose(mean, value, name);
            Assert.False(value.allclose(epochWeights[^1][name]), $"{name} still holds the last epoch's weights");
        }
        var averages = swa.AverageState();
        foreach (var (name, value) in final) Assert.True(Identical(averages[name], value), name);
    }

    [Fact]
    public void Fit_FractionalStart_BeginsAtThatShareOfMaxEpochs()
    {
        using var root = new TempDirectory();
        var swa = new StochasticWeightAveraging(0.05);
        var trainer = Trainer(root, maxEpochs: 10, swa);

        trainer.Fit(new BoringModel(), RandomBatches.Create(1));

        // Lightning: int(10 * 0.8) = 8, the 8th epoch, 0-based 7.
        Assert.Equal(7, swa.SwaStart);
        Assert.Equal(3, swa.AveragedCount);
    }

    [Fact]
    public void Fit_WithBatchNorm_RecomputesItsStatisticsForTheAveragedWeightsInOneExtraForwardOnlyEpoch()
    {
        using var root = new TempDirectory();
        manual_seed(4);
        var model = new BatchNormModel();
        var data = RandomBatches.Create(3, batchSize: 8, seed: 2);
        var swa = new StochasticWeightAveraging(0.05, swaEpochStart: 2);
        var epochWeights = new List<Dictionary<string, Tensor>>();
        var statsBefore = new List<Tensor>();
        var trainer = Trainer(root, maxEpochs: 4, swa, new LambdaCallback(onTrainEpochEnd: (t, m) =>
        {
            var state = Snapshot(m);
            epochWeights.Add(state);
            if (t.CurrentEpoch == 3) statsBefore.AddRange([state["norm.running_mean"], state["norm.running_var"]]);
        }));

        trainer.Fit(model, data);

        Assert.Equal(4, trainer.MaxEpochs);
        Assert.Equal(5, trainer.CurrentEpoch);
        Assert.Equal(12, trainer.GlobalStep);
        Assert.False(trainer.FitLoop!.SkipBackward);
        Assert.Equal(3, swa.AveragedCount);
        foreach (var (name, parameter) in model.named_parameters())
        {
            using var mean = stack(epochWeights.Skip(1).Take(3).Select(w => w[name]).ToArray()).mean([0]);
            AssertClose(mean, parameter, name);
        }

        // By hand: the statistics of the first layer's outputs under the averaged weights, averaged over the batches.
        using (no_grad())
        {
            var hidden = data.Select(x => model.Hidden(x)).ToList();
            using var expectedMean = stack(hidden.Select(h => h.mean([0])).ToArray()).mean([0]);
            using var expectedVar = stack(hidden.Select(h => h.var(0)).ToArray()).mean([0]);
            AssertClose(expectedMean, model.Norm.running_mean!, "running_mean");
            AssertClose(expectedVar, model.Norm.running_var!, "running_var");
        }
        Assert.False(statsBefore[0].allclose(model.Norm.running_mean!));
        Assert.False(statsBefore[1].allclose(model.Norm.running_var!));
        Assert.Equal(3, model.Norm.num_batches_tracked!.item<long>());
        Assert.Equal(0.1, model.Norm.momentum);
    }

    [Fact]
    public void Resume_FromAMidSwaCheckpoint_EndsWithTheSameWeightsAsTheStraightRun()
    {
        using var root = new TempDirectory();
        var path = root.Combine("swa.ckpt");
        var data = RandomBatches.Create(3, seed: 6);
        manual_seed(7);
        var straight = new BoringModel.WithAdam();
        var saver = new LambdaCallback(onTrainEpochEnd: (t, _) =>
        {
            if (t.CurrentEpoch == 2) t.SaveCheckpoint(path);
        });
        Trainer(root, maxEpochs: 5, new StochasticWeightAveraging(0.002, swaEpochStart: 2, annealingEpochs: 3), saver).Fit(straight, data);

        manual_seed(8);
        var resumed = new BoringModel.WithAdam();
        var swa = new StochasticWeightAveraging(0.002, swaEpochStart: 2, annealingEpochs: 3);
        Trainer(root, maxEpochs: 5, swa).Fit(resumed, data, ckptPath: path);

        Assert.Equal(4, swa.AveragedCount);
        var expected = Snapshot(straight);
        foreach (var (name, value) in Snapshot(resumed))
            Assert.True(Identical(expected[name], value), $"{name} differs after resume");
    }

    [Fact]
    public void Fit_WithTwoOptimizerGroupsAndOneRatePerGroup_AnnealsEachGroupToItsRate()
    {
        using var root = new TempDirectory();
        var lrs = new List<double[]>();
        var trainer = Trainer(root, maxEpochs: 2, new StochasticWeightAveraging([0.01, 0.02], swaEpochStart: 1, annealingEpochs: 0),
            new LambdaCallback(onTrainEpochStart: (t, _) => lrs.Add(t.Optimizers[0].ParamGroups.Select(g => g.LearningRate).ToArray())));

        trainer.Fit(new TwoGroupModel(), RandomBatches.Create(1));

        // annealingEpochs = 0 jumps to the SWA rates at once.
        Assert.Equal(new[] { 0.01, 0.02 }, lrs[0]);
        Assert.Equal(new[] { 0.01, 0.02 }, lrs[1]);
    }

    [Fact]
    public void Fit_WithAStepScheduler_HoldsTheSwaRatesDuringSwaEpochs()
    {
        using var root = new TempDirectory();
        var lrs = new List<double>();
        var swa = new StochasticWeightAveraging(0.01, swaEpochStart: 2, annealingEpochs: 1, SwaAnnealingStrategy.Linear);
        var trainer = Trainer(root, maxEpochs: 3, swa,
            new LambdaCallback(onTrainBatchStart: (t, _, _, _) => lrs.Add(t.Optimizers[0].ParamGroups.Single().LearningRate)));

        trainer.Fit(new HalvingModel(), RandomBatches.Create(2));

        // Epoch 0 follows the scheduler (halving every step); from epoch 1 SWA anneals from 0.025 to 0.01 in one epoch.
        double[] expected = [0.1, 0.05, 0.025, 0.025, 0.01, 0.01];
        Assert.Equal(expected.Length, lrs.Count);
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], lrs[i], 12);
    }

    [Theory]
    [InlineData(0, "swaEpochStart = 0")]
    [InlineData(-2, "swaEpochStart = -2")]
    public void Constructor_EpochNumberBelowOne_FailsNamingTheValue(int start, string expected)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new StochasticWeightAveraging(0.1, start));
        Assert.Contains(expected, error.Message);
        Assert.Contains("1 or more", error.Message);
    }

    [Fact]
    public void Constructor_InvalidValues_FailNamingOptionValueAndWhatIsAllowed()
    {
        Assert.Contains("swaEpochStart = 1.5", Assert.Throws<ArgumentOutOfRangeException>(() => new StochasticWeightAveraging(0.1, 1.5)).Message);
        Assert.Contains("swaLrs = [-0.1]", Assert.Throws<ArgumentOutOfRangeException>(() => new StochasticWeightAveraging(-0.1)).Message);
        Assert.Contains("annealingEpochs = -1", Assert.Throws<ArgumentOutOfRangeException>(() => new StochasticWeightAveraging(0.1, annealingEpochs: -1)).Message);
    }

    [Fact]
    public void Fit_WithoutAnEpochLimit_FailsNamingMaxEpochs()
    {
        using var root = new TempDirectory();
        var trainer = new Trainer(TestTrainer.Quiet(root) with { MaxEpochs = -1, MaxSteps = 4, Callbacks = [new StochasticWeightAveraging(0.1)] });

        var error = Assert.Throws<InvalidOperationException>(() => trainer.Fit(new BoringModel(), RandomBatches.Create(2)));

        Assert.Contains("MaxEpochs", error.Message);
    }

    [Fact]
    public void AnnealingFactor_FollowsSwalrForBothStrategies()
    {
        var cos = new StochasticWeightAveraging(0.1, swaEpochStart: 1, annealingEpochs: 4);
        Assert.Equal(new[] { 0, 0.1464466, 0.5, 0.8535534, 1, 1 }, Enumerable.Range(0, 6).Select(i => Math.Round(cos.AnnealingFactor(i), 7)));
        var linear = new StochasticWeightAveraging(0.1, swaEpochStart: 1, annealingEpochs: 4, SwaAnnealingStrategy.Linear);
        Assert.Equal(new[] { 0, 0.25, 0.5, 0.75, 1, 1 }, Enumerable.Range(0, 6).Select(linear.AnnealingFactor));
    }

    private static Trainer Trainer(TempDirectory root, int maxEpochs, params Callback[] callbacks) => new(Quiet(root, callbacks) with { MaxEpochs = maxEpochs });

    private sealed class BatchNormModel : LightningModule<Tensor>
    {
        private readonly Linear first = nn.Linear(32, 4);
        private readonly BatchNorm1d norm = nn.BatchNorm1d(4);
        private readonly Linear last = nn.Linear(4, 2);

        public BatchNormModel() : base(nameof(BatchNormModel)) => RegisterComponents();

        public BatchNorm1d Norm => norm;

        public Tensor Hidden(Tensor x) => first.forward(x);

        public override Tensor? TrainingStep(Tensor batch, int batchIdx)
        {
            var prediction = last.forward(nn.functional.relu(norm.forward(first.forward(batch))));
            return nn.functional.mse_loss(prediction, ones_like(prediction));
        }

        public override OptimizerConfiguration ConfigureOptimizers() => optim.SGD(parameters(), 0.1);
    }

    private sealed class HalvingModel : BoringModel
    {
        public override OptimizerConfiguration ConfigureOptimizers()
        {
            var sgd = optim.SGD(parameters(), Lr);
            return new OptimizerConfiguration(sgd, new LrSchedulerConfig(optim.lr_scheduler.StepLR(sgd, 1, 0.5), SchedulerInterval.Step));
        }
    }

    private sealed class TwoGroupModel : LightningModule<Tensor>
    {
        private readonly Linear first = nn.Linear(32, 4);
        private readonly Linear second = nn.Linear(4, 2);

        public TwoGroupModel() : base(nameof(TwoGroupModel)) => RegisterComponents();

        public override Tensor? TrainingStep(Tensor batch, int batchIdx)
        {
            var prediction = second.forward(first.forward(batch));
            return nn.functional.mse_loss(prediction, ones_like(prediction));
        }

        public override OptimizerConfiguration ConfigureOptimizers()
        {
            var sgd = optim.SGD(first.parameters(), 0.1);
            sgd.add_param_group(new SGD.ParamGroup(second.parameters(), new SGD.Options { LearningRate = 0.2 }));
            return sgd;
        }
    }
}
