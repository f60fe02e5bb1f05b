using Lightning.Callbacks;
using Lightning.Testing;
using TorchSharp;
using TorchSharp.Modules;
using Xunit.Abstractions;
using static Lightning.Testing.TestTrainer;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Callbacks;

public class LearningRateFinderTests(ITestOutputHelper output)
{
    /// <summary>
    /// Full-batch least squares: the same batch every step, so the loss curve is deterministic. Gradient descent on the mean
    /// squared error diverges exactly above 2 / the largest eigenvalue of its Hessian, (2 / n) [X 1]^T [X 1].
    /// </summary>
    private static (IReadOnlyList<Tensor> Batches, double DivergesAbove) RegressionProblem()
    {
        var batch = RandomBatches.Create(1, batchSize: 64, features: 8, seed: 21)[0];
        using var augmented = cat([batch, ones(64, 1)], 1);
        using var hessian = augmented.T.matmul(augmented) * (2.0 / 64);
        using var eigenvalues = linalg.eigvalsh(hessian);
        return (Enumerable.Repeat(batch, 120).ToList(), 2 / eigenvalues.max().item<float>());
    }

    [Fact]
    public void Fit_OnAProblemThatDivergesAboveAKnownRate_SuggestsARateWhereTheLossFallsBelowIt_AndRestoresTheWeights()
    {
        using var root = new TempDirectory();
        manual_seed(22);
        var model = new Regression();
        var before = Snapshot(model);
        var finder = new LearningRateFinder(minLr: 1e-5, maxLr: 10);
        Dictionary<string, Tensor>? atTrainStart = null;
        double? lrAtTrainStart = null;
        var trainer = Trainer(root, finder, new LambdaCallback(onTrainStart: (t, m) =>
        {
            atTrainStart = Snapshot(m);
            lrAtTrainStart = t.Optimizers[0].ParamGroups.Single().LearningRate;
        }));

        var (data, divergesAbove) = RegressionProblem();
        output.WriteLine($"diverges above {divergesAbove}");

        trainer.Fit(model, data);

        var results = finder.Results!;
        output.WriteLine(string.Join("\n", results.LearningRates.Zip(results.Losses, (lr, loss) => $"{lr:E3} {loss:G6}")));
        output.WriteLine($"suggested {finder.SuggestedLr}");
        Assert.True(results.Losses.Count < 100, "the search should stop early once the loss diverges");
        Assert.Equal(results.LearningRates.Count, results.Losses.Count);
        Assert.True(results.LearningRates[^1] > divergesAbove, $"stopped at {results.LearningRates[^1]}, below the divergent range");
        // Sane: below divergence, and past the peak of the smoothed loss before it, where training starts to show.
        var peak = results.LearningRates[results.Losses.Select((loss, i) => (loss, i))
            .Where(p => results.LearningRates[p.i] < divergesAbove).MaxBy(p => p.loss).i];
        Assert.InRange(finder.SuggestedLr!.Value, peak, divergesAbove);
        Assert.Equal(SteepestDescent(results.LearningRates, results.Losses), finder.SuggestedLr);
        Assert.Equal(finder.SuggestedLr, lrAtTrainStart);
        foreach (var (name, value) in before)
            Assert.True(Identical(value, atTrainStart![name]), $"{name} was not restored exactly");
    }

    [Fact]
    public void Fit_WithoutUpdateAttr_TrainsExactlyAsWithoutTheFinder_AndLeavesNoMetricsBehind()
    {
        using var root = new TempDirectory();
        var data = RandomBatches.Create(25, seed: 23);
        var val = RandomBatches.Create(2, seed: 24);
        bool? trainLossBeforeTraining = null;
        var probe = new LambdaCallback(onTrainStart: (t, _) => trainLossBeforeTraining = t.CallbackMetrics.ContainsKey("train_loss"));
        manual_seed(25);
        var plain = new ValidatedModel();
        Trainer(root, probe).Fit(plain, data, val);
        manual_seed(25);
        var searched = new ValidatedModel();
        var finder = new LearningRateFinder(numTraining: 20, updateAttr: false);
        var trainer = Trainer(root, finder, probe);

        trainer.Fit(searched, data, val);

        Assert.Equal(20, finder.Results!.Losses.Count);
        Assert.NotNull(finder.SuggestedLr);
        Assert.False(trainLossBeforeTraining);
        Assert.Equal(searched.Lr, trainer.Optimizers[0].ParamGroups.Single().LearningRate);
        var expected = Snapshot(plain);
        foreach (var (name, value) in Snapshot(searched))
            Assert.True(Identical(expected[name], value), $"{name} differs from the run without the finder");
    }

    [Fact]
    public void Fit_LinearMode_RaisesTheRateByEqualStepsAsLightningsScheduler()
    {
        using var root = new TempDirectory();
        var finder = new LearningRateFinder(minLr: 0.01, maxLr: 0.1, numTraining: 10, mode: LearningRateFinderMode.Linear, earlyStopThreshold: null);

        Trainer(root, finder).Fit(new BoringModel(), RandomBatches.Create(12));

        // Lightning's _LinearLR: the first batch at minLr, batch i > 0 at minLr + (i + 1) / n * (maxLr - minLr).
        double[] expected = [0.01, 0.028, 0.037, 0.046, 0.055, 0.064, 0.073, 0.082, 0.091, 0.1];
        Assert.Equal(expected.Length, finder.Results!.LearningRates.Count);
        for (int i = 0; i < expected.Length; i++) Assert.Equal(expected[i], finder.Results.LearningRates[i], 12);
        Assert.All(finder.Results.Losses, loss => Assert.True(double.IsFinite(loss)));
        Assert.Equal(1e-8 * Math.Pow(1e8, 0.5), new LearningRateFinder().LearningRateAt(49), 15);
    }

    [Fact]
    public void Fit_TooFewBatchesForASuggestion_LeavesTheLearningRateAlone()
    {
        using var root = new TempDirectory();
        var finder = new LearningRateFinder();
        var trainer = Trainer(root, finder);
        // Seeded: whether 5 noisy random batches look like divergence depends on the initial weights.
        TorchSharp.torch.manual_seed(0);

        trainer.Fit(new BoringModel(lr: 0.1), RandomBatches.Create(5));

        Assert.Equal(5, finder.Results!.Losses.Count);
        Assert.Null(finder.SuggestedLr);
        Assert.Equal(0.1, trainer.Optimizers[0].ParamGroups.Single().LearningRate);
    }

    [Fact]
    public void Fit_ManualOptimization_FailsSayingItNeedsAutomaticOptimization()
    {
        using var root = new TempDirectory();
        var trainer = Trainer(root, new LearningRateFinder());

        var error = Assert.Throws<InvalidOperationException>(() => trainer.Fit(new ManualModel(), RandomBatches.Create(2)));

        Assert.Contains("automatic optimization", error.Message);
    }

    [Fact]
    public void Constructor_InvalidValues_FailNamingOptionValueAndWhatIsAllowed()
    {
        Assert.Contains("minLr = 0", Assert.Throws<ArgumentOutOfRangeException>(() => new LearningRateFinder(minLr: 0)).Message);
        Assert.Contains("maxLr = 1E-09", Assert.Throws<ArgumentOutOfRangeException>(() => new LearningRateFinder(maxLr: 1e-9)).Message);
        Assert.Contains("numTraining = 0", Assert.Throws<ArgumentOutOfRangeException>(() => new LearningRateFinder(numTraining: 0)).Message);
        Assert.Contains("earlyStopThreshold = -1", Assert.Throws<ArgumentOutOfRangeException>(() => new LearningRateFinder(earlyStopThreshold: -1)).Message);
        Assert.Contains("Exponential, Linear", Assert.Throws<ArgumentOutOfRangeException>(() => new LearningRateFinder(mode: (LearningRateFinderMode)5)).Message);
    }

    /// <summary>Lightning's suggestion recomputed with NumPy's gradient coefficients over the finite points after skipping 10 and 1.</summary>
    private static double SteepestDescent(IReadOnlyList<double> x, IReadOnlyList<double> y)
    {
        var idx = Enumerable.Range(10, y.Count - 11).Where(i => double.IsFinite(y[i])).ToArray();
        var gradients = new double[idx.Length];
        for (int k = 0; k < idx.Length; k++)
        {
            if (k == 0 || k == idx.Length - 1)
            {
                var (a, b) = k == 0 ? (idx[0], idx[1]) : (idx[k - 1], idx[k]);
                gradients[k] = (y[b] - y[a]) / (x[b] - x[a]);
                continue;
            }
            double d1 = x[idx[k]] - x[idx[k - 1]], d2 = x[idx[k + 1]] - x[idx[k]];
            gradients[k] = -d2 / (d1 * (d1 + d2)) * y[idx[k - 1]] + (d2 - d1) / (d1 * d2) * y[idx[k]] + d1 / (d2 * (d1 + d2)) * y[idx[k + 1]];
        }
        return x[idx[Array.IndexOf(gradients, gradients.Min())]];
    }

    private static Trainer Trainer(TempDirectory root, params Callback[] callbacks) => new(Quiet(root, callbacks) with { MaxEpochs = 1, LimitTrainBatches = 2 });

    private sealed class ValidatedModel() : BoringModel(lr: 0.01)
    {
        public override OptimizerConfiguration ConfigureOptimizers() => optim.Adam(parameters(), Lr);

        public override void ValidationStep(Tensor batch, int batchIdx) => Log("val_loss", forward(batch).sum());
    }

    private sealed class ManualModel : BoringModel
    {
        public ManualModel() => AutomaticOptimization = false;

        public override Tensor? TrainingStep(Tensor batch, int batchIdx)
        {
            var loss = base.TrainingStep(batch, batchIdx)!;
            ManualBackward(loss);
            Optimizers()[0].Step();
            return loss;
        }
    }

    private sealed class Regression : LightningModule<Tensor>
    {
        private readonly Linear layer = nn.Linear(8, 1);

        public Regression() : base(nameof(Regression)) => RegisterComponents();

        public override Tensor? TrainingStep(Tensor batch, int batchIdx)
        {
            var loss = nn.functional.mse_loss(layer.forward(batch), batch.sum(1, keepdim: true) * 0.5);
            Log("train_loss", loss);
            return loss;
        }

        public override OptimizerConfiguration ConfigureOptimizers() => optim.SGD(parameters(), 0.01);
    }
}
