using Lightning.Callbacks;
using Lightning.Loggers;
using Lightning.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Loggers;

/// <summary>TensorBoard's hparams plugin entry and the opt-in weight histograms, read back with an independent event-file reader.</summary>
public class TensorBoardLoggerTests
{
    [Fact]
    public void FinishedRun_WritesTheHparamsEntry_WithTheHyperparametersAndTheLoggedMetrics()
    {
        using var root = new TempDirectory();
        var logger = new TensorBoardLogger(root.Path);
        Fit(root, logger, new HparamModel(lr: 0.05, width: 6, activation: "relu"), epochs: 2);

        var events = Directory.GetFiles(logger.LogDir, "events.out.tfevents.*").Select(TensorBoardEvents.Read).ToList();
        var plugins = events.SelectMany(e => e.Plugins).Where(p => p.PluginName == "hparams").ToDictionary(p => p.Tag, p => TensorBoardEvents.DecodeHparams(p.Content));
        Assert.Equal(["_hparams_/experiment", "_hparams_/session_end_info", "_hparams_/session_start_info"], plugins.Keys.Order());

        var start = plugins["_hparams_/session_start_info"];
        Assert.Equal("session_start_info", start.Part);
        Assert.Equal(0.05, (double)start.Hparams["lr"]);
        Assert.Equal(6.0, (double)start.Hparams["width"]);
        Assert.Equal("relu", start.Hparams["activation"]);
        Assert.Equal(true, start.Hparams["bias"]);

        var experiment = plugins["_hparams_/experiment"];
        Assert.Equal(["activation", "bias", "lr", "width"], experiment.HparamNames);
        // Every metric the run logged is named, and its scalars are in the run's folder for TensorBoard to show.
        var scalarTags = events.SelectMany(e => e.Scalars).Select(s => s.Tag).Where(t => t != "epoch").Distinct().Order().ToList();
        Assert.Contains("train_loss", scalarTags);
        Assert.Contains("val_loss", scalarTags);
        Assert.Equal(scalarTags, experiment.Metrics);

        Assert.Equal(1, plugins["_hparams_/session_end_info"].Status); // STATUS_SUCCESS
    }

    [Fact]
    public void FailedRun_EndsItsSessionWithFailure()
    {
        using var root = new TempDirectory();
        var logger = new TensorBoardLogger(root.Path);
        var failing = new LambdaCallback(onTrainBatchEnd: (trainer, _, _, _, _) =>
        {
            if (trainer.GlobalStep == 2) throw new InvalidOperationException("stop here");
        });
        Assert.Throws<InvalidOperationException>(() => Fit(root, logger, new HparamModel(), epochs: 1, failing));

        var end = Directory.GetFiles(logger.LogDir, "events.out.tfevents.*").SelectMany(f => TensorBoardEvents.Read(f).Plugins)
            .Single(p => p.Tag == "_hparams_/session_end_info");
        Assert.Equal(2, TensorBoardEvents.DecodeHparams(end.Content).Status); // STATUS_FAILURE
    }

    [Fact]
    public void WeightHistograms_WriteEachParameterAtEachEpochEnd()
    {
        using var root = new TempDirectory();
        var logger = new TensorBoardLogger(root.Path);
        var model = new HparamModel();
        var atEpochEnds = new List<(long Step, Dictionary<string, (double Min, double Max, double Sum, long Count)> Weights)>();
        // Recorded before the histogram callback runs, from the live parameters.
        var snapshot = new LambdaCallback(onTrainEpochEnd: (trainer, module) => atEpochEnds.Add((trainer.GlobalStep,
            module.named_parameters().ToDictionary(p => p.name, p => (p.parameter.min().ToDouble(), p.parameter.max().ToDouble(), p.parameter.to(ScalarType.Float64).sum().ToDouble(), p.parameter.numel())))));
        Fit(root, logger, model, epochs: 2, snapshot, new WeightHistograms());

        var histograms = Directory.GetFiles(logger.LogDir, "events.out.tfevents.*").SelectMany(f => TensorBoardEvents.Read(f).Histograms).ToList();
        var parameters = model.named_parameters().Select(p => p.name).ToList();
        Assert.Equal(2 * parameters.Count * 2, histograms.Count); // weights and gradients, two epochs
        foreach (var (step, weights) in atEpochEnds)
            foreach (var name in parameters)
            {
                var histogram = Assert.Single(histograms, h => h.Tag == $"weights/{name}" && h.Step == step);
                var (min, max, sum, count) = weights[name];
                Assert.Equal(count, (long)histogram.Num);
                Assert.Equal(min, histogram.Min, 1e-6);
                Assert.Equal(max, histogram.Max, 1e-6);
                Assert.Equal(sum, histogram.Sum, 1e-4);
                Assert.Single(histograms, h => h.Tag == $"gradients/{name}" && h.Step == step);
            }
    }

    [Fact]
    public void WeightHistograms_RefuseAnIntervalBelowOne()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new WeightHistograms(everyNEpochs: 0));
        Assert.Contains("everyNEpochs = 0 is not allowed: it must be 1 or more.", error.Message);
    }

    private static void Fit(TempDirectory root, TensorBoardLogger logger, HparamModel model, int epochs, params Callback[] callbacks)
    {
        manual_seed(3);
        var trainer = new Trainer(TestTrainer.Quiet(root) with { Accelerator = "cpu", MaxEpochs = epochs, Loggers = [logger], LogEveryNSteps = 1, Callbacks = callbacks });
        var batches = RandomBatches.Create(4, batchSize: 4, features: 8, seed: 2);
        trainer.Fit(model, batches, batches);
    }

    private sealed class HparamModel : LightningModule<Tensor>
    {
        private readonly TorchSharp.Modules.Sequential net;
        private readonly double _lr;

        public HparamModel(double lr = 0.1, int width = 8, string activation = "tanh", bool bias = true) : base(nameof(HparamModel))
        {
            net = nn.Sequential(nn.Linear(8, width, hasBias: bias), activation == "relu" ? nn.ReLU() : nn.Tanh(), nn.Linear(width, 1));
            _lr = lr;
            SaveHyperparameters(new { lr, width, activation, bias });
            RegisterComponents();
        }

        public override Tensor TrainingStep(Tensor batch, int batchIdx)
        {
            var loss = Loss(batch);
            Log("train_loss", loss);
            return loss;
        }

        public override void ValidationStep(Tensor batch, int batchIdx) => Log("val_loss", Loss(batch));

        public override OptimizerConfiguration ConfigureOptimizers() => optim.SGD(parameters(), _lr);

        private Tensor Loss(Tensor batch) => nn.functional.mse_loss(net.forward(batch), batch.sum(1, keepdim: true));
    }
}
