using System.Globalization;
using Lightning.Callbacks;
using Lightning.Loggers;
using Lightning.Testing;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Loops;

public class LoggingTests
{
    private static TrainerOptions Options(TempDirectory root) => TestTrainer.Quiet(root) with { NumSanityValSteps = 0, LogEveryNSteps = 1, Loggers = null };

    [Fact]
    public void OnStepAndOnEpoch_ForkTheKeysWithSuffixes()
    {
        using var root = new TempDirectory();
        var model = new LoggingModel((m, i) => m.Log("loss", (double)i, onStep: true, onEpoch: true));
        var trainer = new Trainer(Options(root) with { MaxEpochs = 1, Loggers = [] });
        trainer.Fit(model, RandomBatches.Create(4));

        Assert.Equal(3.0, trainer.CallbackMetrics["loss_step"]);
        Assert.Equal(1.5, trainer.CallbackMetrics["loss_epoch"]);
        Assert.Equal(1.5, trainer.CallbackMetrics["loss"]);
    }

    [Theory]
    [InlineData(ReduceFx.Mean, 1.5)]
    [InlineData(ReduceFx.Sum, 6.0)]
    [InlineData(ReduceFx.Min, 0.0)]
    [InlineData(ReduceFx.Max, 3.0)]
    public void ReduceFx_ReducesTheEpoch(ReduceFx reduce, double expected)
    {
        using var root = new TempDirectory();
        var model = new LoggingModel((m, i) => m.Log("value", (double)i, onStep: false, onEpoch: true, reduceFx: reduce));
        var trainer = new Trainer(Options(root) with { MaxEpochs = 1, Loggers = [] });
        trainer.Fit(model, RandomBatches.Create(4));
        Assert.Equal(expected, trainer.CallbackMetrics["value"]);
    }

    [Fact]
    public void ValidationMeans_AreWeightedByBatchSize()
    {
        using var root = new TempDirectory();
        var model = new LoggingModel(validation: (m, batch) => m.Log("val_size", (double)batch.shape[0]));
        var trainer = new Trainer(Options(root) with { MaxEpochs = 1, Loggers = [] });
        // Batches of 1 and 3 rows: the per-row mean of the logged sizes is (1*1 + 3*3) / 4.
        trainer.Fit(model, RandomBatches.Create(1), [randn(1, 32), randn(3, 32)]);
        Assert.Equal(10.0 / 4, trainer.CallbackMetrics["val_size"]);
    }

    [Fact]
    public void ExplicitBatchSize_OverridesTheInferredOne()
    {
        using var root = new TempDirectory();
        var model = new LoggingModel(validation: (m, batch) => m.Log("v", (double)batch.shape[0], batchSize: 1));
        var trainer = new Trainer(Options(root) with { MaxEpochs = 1, Loggers = [] });
        trainer.Fit(model, RandomBatches.Create(1), [randn(1, 32), randn(3, 32)]);
        Assert.Equal(2.0, trainer.CallbackMetrics["v"]);
    }

    [Fact]
    public void ProgBarAndLoggerFlags_RouteTheValues()
    {
        using var root = new TempDirectory();
        var model = new LoggingModel((m, i) =>
        {
            m.Log("shown", 1.0, progBar: true);
            m.Log("hidden", 2.0, logger: false);
        });
        var csv = new CsvLogger(root.Path);
        var trainer = new Trainer(Options(root) with { MaxEpochs = 1, Loggers = [csv] });
        trainer.Fit(model, RandomBatches.Create(2));

        Assert.Equal(1.0, trainer.ProgressBarMetrics["shown"]);
        Assert.False(trainer.ProgressBarMetrics.ContainsKey("hidden"));
        Assert.Equal(2.0, trainer.CallbackMetrics["hidden"]);
        Assert.False(trainer.LoggedMetrics.ContainsKey("hidden"));
        Assert.Equal("epoch,shown,step,train_loss", File.ReadLines(Path.Combine(csv.LogDir, "metrics.csv")).First());
    }

    [Fact]
    public void ValidationMetrics_ReachEveryLoggerOncePerValidation()
    {
        using var root = new TempDirectory();
        var model = new LoggingModel(validation: (m, batch) => m.Log("val_loss", 0.5));
        var csv = new CsvLogger(root.Path, "a");
        var second = new CsvLogger(root.Path, "b");
        new Trainer(Options(root) with { MaxEpochs = 2, Loggers = [csv, second] }).Fit(model, RandomBatches.Create(2), RandomBatches.Create(2));

        foreach (var logger in new[] { csv, second })
        {
            var lines = File.ReadAllLines(Path.Combine(logger.LogDir, "metrics.csv"));
            var header = lines[0].Split(',');
            var column = Array.IndexOf(header, "val_loss");
            var rows = lines.Skip(1).Select(l => l.Split(',')).Where(r => r[column] != "").ToList();
            Assert.Equal(2, rows.Count);
            Assert.All(rows, r => Assert.Equal(0.5, double.Parse(r[column], CultureInfo.InvariantCulture)));
            Assert.Equal(new[] { "1", "3" }, rows.Select(r => r[Array.IndexOf(header, "step")]));
        }
    }

    [Fact]
    public void OnStepInsideAnEpochHook_IsRefusedAsLightningDoes()
    {
        using var root = new TempDirectory();
        var model = new LoggingModel(epochEnd: m => m.Log("x", 1.0, onStep: true));
        var trainer = new Trainer(Options(root) with { MaxEpochs = 1, Loggers = [] });
        var error = Assert.Throws<InvalidOperationException>(() => trainer.Fit(model, RandomBatches.Create(1)));
        Assert.Equal("You can't Log(onStep: true) inside on_train_epoch_end, must be one of [false].", error.Message);
    }

    [Fact]
    public void LogInsideSetup_IsRefused()
    {
        using var root = new TempDirectory();
        var model = new LoggingModel(setup: m => m.Log("x", 1.0));
        var error = Assert.Throws<InvalidOperationException>(() => new Trainer(Options(root) with { Loggers = [] }).Fit(model, RandomBatches.Create(1)));
        Assert.StartsWith("You can't Log() inside setup", error.Message);
    }

    [Fact]
    public void LogInEpochEndHook_IsVisibleToTheCallbacksThatRunAfterIt()
    {
        using var root = new TempDirectory();
        var model = new LoggingModel(epochEnd: m => m.Log("epoch_metric", 7.0));
        // A monitoring callback runs its on_train_epoch_end after the module's, so it must already see the value.
        var checkpoint = new ModelCheckpoint(root.Combine("ckpt"), monitor: "epoch_metric", saveOnTrainEpochEnd: true);
        // With a logger (the default one), as Lightning only fills LoggedMetrics when there is one.
        var trainer = new Trainer(Options(root) with { MaxEpochs = 1, EnableCheckpointing = true, Callbacks = [checkpoint] });
        trainer.Fit(model, RandomBatches.Create(1));
        Assert.Equal(7.0, checkpoint.BestModelScore);
        Assert.Equal(7.0, trainer.CallbackMetrics["epoch_metric"]);
        Assert.Equal(7.0, trainer.LoggedMetrics["epoch_metric"]);
    }

    [Fact]
    public void LogDict_LogsEveryEntry()
    {
        using var root = new TempDirectory();
        var model = new LoggingModel((m, i) => m.LogDict(new Dictionary<string, double> { ["a"] = 1, ["b"] = 2 }));
        var trainer = new Trainer(Options(root) with { MaxEpochs = 1, Loggers = [] });
        trainer.Fit(model, RandomBatches.Create(1));
        Assert.Equal(1.0, trainer.CallbackMetrics["a"]);
        Assert.Equal(2.0, trainer.CallbackMetrics["b"]);
    }

    [Fact]
    public void LogInOnTrainStart_IsAnEpochValue_AsLightningAllows()
    {
        using var root = new TempDirectory();
        var model = new HookLoggingModel(onTrainStart: m => m.Log("start", 3.0));
        var trainer = new Trainer(Options(root) with { MaxEpochs = 1, Loggers = [] });
        trainer.Fit(model, RandomBatches.Create(1));
        Assert.Equal(3.0, trainer.CallbackMetrics["start"]);
        Assert.Throws<InvalidOperationException>(() => new Trainer(Options(root) with { MaxEpochs = 1, Loggers = [] })
            .Fit(new HookLoggingModel(onTrainStart: m => m.Log("start", 3.0, onStep: true)), RandomBatches.Create(1)));
    }

    [Theory]
    [InlineData("on_validation_end")]
    [InlineData("lr_scheduler_step")]
    [InlineData("on_save_checkpoint")]
    public void LogInHooksLightningForbids_IsRefusedNamingTheHook(string hook)
    {
        using var root = new TempDirectory();
        var model = new HookLoggingModel(forbidden: hook, log: m => m.Log("x", 1.0));
        var trainer = new Trainer(Options(root) with { MaxEpochs = 1, Loggers = [], EnableCheckpointing = true });
        var error = Assert.Throws<InvalidOperationException>(() => trainer.Fit(model, RandomBatches.Create(2), RandomBatches.Create(1)));
        Assert.StartsWith($"You can't Log() inside {hook}", error.Message);
    }

    private sealed class HookLoggingModel(Action<HookLoggingModel>? onTrainStart = null, string? forbidden = null, Action<HookLoggingModel>? log = null)
        : BoringModel
    {
        public override void ValidationStep(Tensor batch, int batchIdx) { }
        public override void OnTrainStart() => onTrainStart?.Invoke(this);
        public override void OnValidationEnd() => LogIn("on_validation_end");
        public override void OnSaveCheckpoint(Lightning.Checkpoints.Checkpoint checkpoint) => LogIn("on_save_checkpoint");

        public override void LrSchedulerStep(optim.lr_scheduler.LRScheduler scheduler, double? metric)
        {
            LogIn("lr_scheduler_step");
            base.LrSchedulerStep(scheduler, metric);
        }

        public override OptimizerConfiguration ConfigureOptimizers()
        {
            var optimizer = optim.SGD(parameters(), Lr);
            return new OptimizerConfiguration(optimizer, optim.lr_scheduler.StepLR(optimizer, 1));
        }

        private void LogIn(string hook)
        {
            if (hook == forbidden) log?.Invoke(this);
        }
    }

    private sealed class LoggingModel(
        Action<LoggingModel, int>? step = null,
        Action<LoggingModel, Tensor>? validation = null,
        Action<LoggingModel>? epochEnd = null,
        Action<LoggingModel>? setup = null) : BoringModel
    {
        public override Tensor? TrainingStep(Tensor batch, int batchIdx)
        {
            step?.Invoke(this, batchIdx);
            return base.TrainingStep(batch, batchIdx);
        }

        public override void ValidationStep(Tensor batch, int batchIdx) => validation?.Invoke(this, batch);
        public override void OnTrainEpochEnd() => epochEnd?.Invoke(this);
        public override void Setup(Stage stage) => setup?.Invoke(this);
    }
}
