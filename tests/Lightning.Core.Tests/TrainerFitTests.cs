using System.Globalization;
using Lightning.Callbacks;
using Lightning.Loggers;
using Lightning.Testing;
using static TorchSharp.torch;

namespace Lightning.Core.Tests;

public class TrainerFitTests
{
    [Fact]
    public void Fit_BoringModel_LowersTheLoss()
    {
        using var root = new TempDirectory();
        manual_seed(42);
        var model = new BoringModel();
        var losses = new List<double>();
        var trainer = new Trainer(new TrainerOptions
        {
            MaxEpochs = 1, DefaultRootDir = root.Path, EnableProgressBar = false, EnableCheckpointing = false,
            Loggers = [], Callbacks = [new RecordLoss(losses)],
        });

        trainer.Fit(model, RandomBatches.Create(64));

        Assert.Equal(64, losses.Count);
        Assert.Equal(64, trainer.GlobalStep);
        Assert.True(losses.TakeLast(8).Average() < losses.Take(8).Average() / 2,
            $"loss did not fall: first {losses.Take(8).Average()}, last {losses.TakeLast(8).Average()}");
    }

    [Fact]
    public void Fit_WritesLightningLayout_WithLogsHparamsAndCheckpoint()
    {
        using var root = new TempDirectory();
        var trainer = new Trainer(new TrainerOptions
        {
            MaxEpochs = 1, LimitTrainBatches = 100, DefaultRootDir = root.Path, EnableProgressBar = false,
        });

        trainer.Fit(new BoringModel(lr: 0.05), RandomBatches.Create(150));

        var version = root.Combine("lightning_logs", "version_0");
        Assert.Equal(version, trainer.LogDir);
        Assert.True(File.Exists(Path.Combine(version, "checkpoints", "epoch=0-step=100.ckpt")));
        Assert.Equal(Path.Combine(version, "checkpoints", "epoch=0-step=100.ckpt"), trainer.CheckpointCallback!.BestModelPath);
        // The scalars' event file, and the hparams plugin's entry written when the run ended.
        Assert.Single(Directory.GetFiles(version, "events.out.tfevents.*"), f => !f.EndsWith(".hparams", StringComparison.Ordinal));
        Assert.Single(Directory.GetFiles(version, "events.out.tfevents.*.hparams"));

        var hparams = File.ReadAllLines(Path.Combine(version, "hparams.yaml"));
        Assert.Contains("lr: 0.05", hparams);
        Assert.Contains("inFeatures: 32", hparams);

        var csv = File.ReadAllLines(Path.Combine(version, "metrics.csv"));
        Assert.Equal("epoch,step,train_loss", csv[0]);
        var rows = csv.Skip(1).Select(line => line.Split(',')).ToList();
        Assert.Equal(new[] { "49", "99" }, rows.Select(r => r[1]));
        Assert.All(rows, r => Assert.Equal("0", r[0]));
        Assert.Equal(trainer.LoggedMetrics["train_loss"], double.Parse(rows[1][2], CultureInfo.InvariantCulture));
    }

    [Fact]
    public void Fit_TensorBoardFile_HoldsValidEventsWithTrainLossAtLoggedSteps()
    {
        using var root = new TempDirectory();
        var trainer = new Trainer(new TrainerOptions
        {
            MaxEpochs = 2, LimitTrainBatches = 30, LogEveryNSteps = 10, DefaultRootDir = root.Path,
            EnableProgressBar = false, EnableCheckpointing = false,
        });

        trainer.Fit(new BoringModel(), RandomBatches.Create(30));

        var file = Directory.GetFiles(trainer.LogDir!, "events.out.tfevents.*").Single(f => !f.EndsWith(".hparams", StringComparison.Ordinal));
        var events = TensorBoardEvents.Read(file);
        Assert.Equal("brain.Event:2", events.FileVersion);
        var losses = events.Scalars.Where(s => s.Tag == "train_loss").ToList();
        Assert.Equal(new long[] { 9, 19, 29, 39, 49, 59 }, losses.Select(s => s.Step));

        var csv = File.ReadAllLines(Path.Combine(trainer.LogDir!, "metrics.csv")).Skip(1)
            .Select(line => line.Split(',')).ToDictionary(r => long.Parse(r[1]), r => double.Parse(r[2], CultureInfo.InvariantCulture));
        Assert.All(losses, s => Assert.Equal((float)csv[s.Step], s.Value));
        Assert.All(events.Scalars.Where(s => s.Tag == "epoch"), s => Assert.Equal(s.Step < 30 ? 0f : 1f, s.Value));
    }

    [Fact]
    public void Fit_AgainWithANewTrainer_WritesTheNextVersion()
    {
        using var root = new TempDirectory();
        TrainerOptions Options() => new() { MaxEpochs = 1, DefaultRootDir = root.Path, EnableProgressBar = false };

        new Trainer(Options()).Fit(new BoringModel(), RandomBatches.Create(4));
        var second = new Trainer(Options());
        second.Fit(new BoringModel(), RandomBatches.Create(4));

        Assert.Equal(root.Combine("lightning_logs", "version_1"), second.LogDir);
        Assert.True(File.Exists(root.Combine("lightning_logs", "version_1", "checkpoints", "epoch=0-step=4.ckpt")));
        Assert.True(File.Exists(root.Combine("lightning_logs", "version_0", "checkpoints", "epoch=0-step=4.ckpt")));
    }

    [Fact]
    public void Fit_EveryEpoch_KeepsOnlyTheLatestCheckpoint()
    {
        using var root = new TempDirectory();
        var trainer = new Trainer(new TrainerOptions { MaxEpochs = 3, DefaultRootDir = root.Path, EnableProgressBar = false });

        trainer.Fit(new BoringModel(), RandomBatches.Create(5));

        var checkpoints = Directory.GetFiles(Path.Combine(trainer.LogDir!, "checkpoints")).Select(Path.GetFileName);
        Assert.Equal(new[] { "epoch=2-step=15.ckpt" }, checkpoints);
        Assert.Equal(3, trainer.CurrentEpoch);
    }

    [Fact]
    public void Fit_WithProgressBar_DrawsEpochBatchesRateAndLoss()
    {
        using var root = new TempDirectory();
        var output = new StringWriter();
        var trainer = new Trainer(new TrainerOptions
        {
            MaxEpochs = 1, DefaultRootDir = root.Path, Loggers = [], EnableCheckpointing = false,
            Callbacks = [new ProgressBar(output, refreshSeconds: 0)],
        });

        trainer.Fit(new BoringModel(), RandomBatches.Create(7));

        var lines = output.ToString().Split('\r', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(8, lines.Length); // one per batch, then the epoch's final line
        Assert.StartsWith("Epoch 0: ", lines[0]);
        Assert.Contains(" 1/7 [", lines[0]);
        Assert.Contains(" 7/7 [", lines[^1]);
        Assert.Matches(@"\d+\.\d\dit/s, loss=\d", lines[^1]);
        Assert.EndsWith(Environment.NewLine, lines[^1]);
    }

    [Fact]
    public void Fit_WhenAStepThrows_CallbacksSeeTheExceptionAndItPropagatesUnchanged()
    {
        using var root = new TempDirectory();
        var seen = new List<Exception>();
        var trainer = new Trainer(new TrainerOptions
        {
            DefaultRootDir = root.Path, EnableProgressBar = false, Callbacks = [new RecordException(seen)],
        });
        var model = new FailingModel(failAt: 3);

        var thrown = Assert.Throws<InvalidOperationException>(() => trainer.Fit(model, RandomBatches.Create(10)));

        Assert.Same(thrown, Assert.Single(seen));
        Assert.Equal(3, trainer.GlobalStep);
        Assert.False(Directory.Exists(Path.Combine(trainer.LogDir!, "checkpoints")));
    }

    [Theory]
    [InlineData(-2, "MaxEpochs = -2")]
    public void Options_InvalidMaxEpochs_FailsBeforeAnyWork(int maxEpochs, string expected)
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new Trainer(new TrainerOptions { MaxEpochs = maxEpochs }));
        Assert.Contains(expected, error.Message);
        Assert.Contains("-1 for no limit", error.Message);
    }

    [Fact]
    public void Options_LimitTrainBatchesFractionAboveOne_NamesOptionValueAndRange()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new Trainer(new TrainerOptions { LimitTrainBatches = 1.5 }));
        Assert.Contains("LimitTrainBatches = 1.5", error.Message);
        Assert.Contains("between 0.0 and 1.0", error.Message);
    }

    [Fact]
    public void LimitTrainBatches_Fraction_RunsThatShareOfTheLoader()
    {
        using var root = new TempDirectory();
        var trainer = new Trainer(new TrainerOptions
        {
            MaxEpochs = 1, LimitTrainBatches = 0.25, DefaultRootDir = root.Path, EnableProgressBar = false, Loggers = [],
            EnableCheckpointing = false,
        });

        trainer.Fit(new BoringModel(), RandomBatches.Create(20));

        Assert.Equal(5, trainer.NumTrainingBatches);
        Assert.Equal(5, trainer.GlobalStep);
    }

    private sealed class RecordLoss(List<double> losses) : Callback
    {
        public override void OnTrainBatchEnd(Trainer trainer, LightningModule module, double? loss, object? batch, int batchIdx) =>
            losses.Add(loss!.Value);
    }

    private sealed class RecordException(List<Exception> seen) : Callback
    {
        public override void OnException(Trainer trainer, LightningModule module, Exception exception) => seen.Add(exception);
    }

    private sealed class FailingModel(int failAt) : BoringModel
    {
        public override Tensor? TrainingStep(Tensor batch, int batchIdx) =>
            batchIdx == failAt ? throw new InvalidOperationException("boom") : base.TrainingStep(batch, batchIdx);
    }
}
