using System.Globalization;
using Lightning.Callbacks;
using Lightning.Checkpoints;
using Lightning.Loggers;
using Lightning.Testing;
using static Lightning.Testing.TestTrainer;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Callbacks;

public class ModelCheckpointTests
{
    private const int BatchesPerEpoch = 4;

    private static TrainerOptions Options(TempDirectory root, ModelCheckpoint checkpoint, int maxEpochs) =>
        Quiet(root, checkpoint) with { MaxEpochs = maxEpochs, EnableCheckpointing = true };

    private static IReadOnlyList<Tensor> Train => RandomBatches.Create(BatchesPerEpoch, seed: 1);
    private static IReadOnlyList<Tensor> Val => RandomBatches.Create(2, seed: 2);

    private static string[] Files(string dir) =>
        Directory.GetFiles(dir, "*.ckpt").Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray()!;

    private static string Name(int epoch, double valLoss) =>
        string.Create(CultureInfo.InvariantCulture, $"epoch={epoch}-val_loss={valLoss:0.00}.ckpt");

    [Theory]
    [InlineData("min")]
    [InlineData("max")]
    public void SaveTopK_KeepsExactlyTheKBestFilesByTheMonitoredMetric(string mode)
    {
        using var root = new TempDirectory();
        double[] losses = [0.5, 0.3, 0.6, 0.1, 0.4];
        const int k = 2;
        var checkpoint = new ModelCheckpoint(root.Combine("ckpt"), "{epoch}-{val_loss:.2f}", monitor: "val_loss", saveTopK: k, mode: mode);

        new Trainer(Options(root, checkpoint, losses.Length)).Fit(new ScriptedValLoss(losses), Train, Val);

        var ranked = losses.Select((loss, epoch) => (loss, epoch)).OrderBy(e => mode == "min" ? e.loss : -e.loss).ToList();
        var expected = ranked.Take(k).Select(e => Name(e.epoch, e.loss)).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(expected, Files(checkpoint.DirPath!));
        Assert.Equal(Path.Combine(root.Combine("ckpt"), Name(ranked[0].epoch, ranked[0].loss)), checkpoint.BestModelPath);
        Assert.Equal(ranked[0].loss, checkpoint.BestModelScore!.Value, 6);
        Assert.Equal(expected, checkpoint.BestKModels.Keys.Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray());
        Assert.Equal(Name(ranked[k - 1].epoch, ranked[k - 1].loss), Path.GetFileName(checkpoint.KthBestModelPath));
        Assert.Equal(ranked[k - 1].loss, checkpoint.KthValue, 6);
    }

    [Fact]
    public void SaveTopK_MinusOneKeepsEveryEpochAndZeroKeepsNone()
    {
        using var root = new TempDirectory();
        double[] losses = [0.5, 0.3, 0.6];
        var all = new ModelCheckpoint(root.Combine("all"), "{epoch}-{val_loss:.2f}", monitor: "val_loss", saveTopK: -1);
        var none = new ModelCheckpoint(root.Combine("none"), monitor: "val_loss", saveTopK: 0, saveLast: true);

        new Trainer(Options(root, all, losses.Length) with { Callbacks = [all, none] }).Fit(new ScriptedValLoss(losses), Train, Val);

        Assert.Equal(losses.Select((loss, epoch) => Name(epoch, loss)).Order(StringComparer.Ordinal), Files(all.DirPath!));
        Assert.Equal(new[] { "last.ckpt" }, Files(none.DirPath!));
        Assert.Null(none.BestModelPath);
    }

    [Fact]
    public void NoMonitor_KeepsOnlyTheLatestCheckpoint()
    {
        using var root = new TempDirectory();
        var checkpoint = new ModelCheckpoint(root.Combine("ckpt"));

        new Trainer(Options(root, checkpoint, 3)).Fit(new BoringModel(), Train);

        var last = $"epoch=2-step={3 * BatchesPerEpoch}.ckpt";
        Assert.Equal(new[] { last }, Files(checkpoint.DirPath!));
        Assert.Equal(Path.Combine(checkpoint.DirPath!, last), checkpoint.BestModelPath);
        Assert.Null(checkpoint.BestModelScore);
    }

    [Fact]
    public void SaveLast_WritesLastCkptHoldingTheFinalEpoch()
    {
        using var root = new TempDirectory();
        double[] losses = [0.2, 0.5, 0.6];
        var checkpoint = new ModelCheckpoint(root.Combine("ckpt"), monitor: "val_loss", saveLast: true);

        new Trainer(Options(root, checkpoint, losses.Length)).Fit(new ScriptedValLoss(losses), Train, Val);

        Assert.Equal(Path.Combine(checkpoint.DirPath!, "last.ckpt"), checkpoint.LastModelPath);
        Assert.Equal(losses.Length - 1, Checkpoint.Load(checkpoint.LastModelPath!).Epoch);
        Assert.Equal(0, Checkpoint.Load(checkpoint.BestModelPath!).Epoch);
        Assert.Equal(new[] { $"epoch=0-step={BatchesPerEpoch}.ckpt", "last.ckpt" }, Files(checkpoint.DirPath!));
    }

    [Fact]
    public void NameClash_AppendsVersionSuffixes_UnlessTheCounterIsOff()
    {
        using var root = new TempDirectory();
        var counted = new ModelCheckpoint(root.Combine("counted"), "fixed", monitor: "val_loss", saveTopK: -1);
        var overwritten = new ModelCheckpoint(root.Combine("overwritten"), "fixed", monitor: "val_loss", saveTopK: -1, enableVersionCounter: false);

        new Trainer(Options(root, counted, 3) with { Callbacks = [counted, overwritten] }).Fit(new ScriptedValLoss(0.3, 0.2, 0.1), Train, Val);

        Assert.Equal(new[] { "fixed-v1.ckpt", "fixed-v2.ckpt", "fixed.ckpt" }, Files(counted.DirPath!));
        Assert.Equal(new[] { "fixed.ckpt" }, Files(overwritten.DirPath!));
        Assert.Equal(2, Checkpoint.Load(Path.Combine(overwritten.DirPath!, "fixed.ckpt")).Epoch);
    }

    [Fact]
    public void ExistingFileOfTheSameName_IsKeptAndTheNewOneGetsV1()
    {
        using var root = new TempDirectory();
        var dir = root.Combine("ckpt");
        Directory.CreateDirectory(dir);
        var foreign = Path.Combine(dir, $"epoch=0-step={BatchesPerEpoch}.ckpt");
        File.WriteAllText(foreign, "not ours");
        var checkpoint = new ModelCheckpoint(dir);

        new Trainer(Options(root, checkpoint, 1)).Fit(new BoringModel(), Train);

        Assert.Equal("not ours", File.ReadAllText(foreign));
        Assert.Equal(Path.Combine(dir, $"epoch=0-step={BatchesPerEpoch}-v1.ckpt"), checkpoint.BestModelPath);
    }

    [Fact]
    public void EveryNTrainSteps_SavesAfterThoseStepsAndNotAtEpochEnds()
    {
        using var root = new TempDirectory();
        const int every = 3, epochs = 2;
        var checkpoint = new ModelCheckpoint(root.Combine("ckpt"), everyNTrainSteps: every, saveTopK: -1);

        new Trainer(Options(root, checkpoint, epochs)).Fit(new BoringModel(), Train);

        var expected = Enumerable.Range(1, epochs * BatchesPerEpoch / every)
            .Select(n => n * every)
            .Select(step => $"epoch={(step - 1) / BatchesPerEpoch}-step={step}.ckpt");
        Assert.Equal(expected.Order(StringComparer.Ordinal), Files(checkpoint.DirPath!));
    }

    [Fact]
    public void EveryNEpochs_SavesOnlyThoseEpochs()
    {
        using var root = new TempDirectory();
        var checkpoint = new ModelCheckpoint(root.Combine("ckpt"), "{epoch:02d}", everyNEpochs: 2, saveTopK: -1);

        new Trainer(Options(root, checkpoint, 5)).Fit(new BoringModel(), Train);

        Assert.Equal(new[] { "epoch=01.ckpt", "epoch=03.ckpt" }, Files(checkpoint.DirPath!));
    }

    [Fact]
    public void TrainTimeInterval_SavesWhenTheIntervalHasPassed()
    {
        using var root = new TempDirectory();
        var checkpoint = new ModelCheckpoint(root.Combine("ckpt"), "{step}", trainTimeInterval: TimeSpan.FromMilliseconds(5), saveTopK: -1);

        // Each step sleeps longer than the interval, so every batch end finds it passed.
        new Trainer(Options(root, checkpoint, 1)).Fit(new SlowModel(TimeSpan.FromMilliseconds(15)), Train);

        Assert.Equal(Enumerable.Range(1, BatchesPerEpoch).Select(s => $"step={s}.ckpt"), Files(checkpoint.DirPath!));
    }

    [Fact]
    public void ValidationInsideEpochs_SavesAfterEachValidationRun()
    {
        using var root = new TempDirectory();
        var checkpoint = new ModelCheckpoint(root.Combine("ckpt"), saveTopK: -1);
        var options = Options(root, checkpoint, 1) with { ValCheckInterval = 0.5 };

        new Trainer(options).Fit(new ScriptedValLoss(0.1), Train, Val);

        Assert.Equal(new[] { $"epoch=0-step={BatchesPerEpoch / 2}.ckpt", $"epoch=0-step={BatchesPerEpoch}.ckpt" }, Files(checkpoint.DirPath!));
    }

    [Fact]
    public void SanityCheckAndValidateStage_SaveNothing()
    {
        using var root = new TempDirectory();
        var checkpoint = new ModelCheckpoint(root.Combine("ckpt"), monitor: "val_loss", saveOnTrainEpochEnd: false, saveTopK: -1);
        var trainer = new Trainer(Options(root, checkpoint, 1) with { NumSanityValSteps = 2 });
        var model = new ScriptedValLoss(0.4);

        trainer.Validate(model, Val);
        Assert.False(Directory.Exists(checkpoint.DirPath));

        trainer.Fit(model, Train, Val);
        Assert.Equal(new[] { $"epoch=0-step={BatchesPerEpoch}.ckpt" }, Files(checkpoint.DirPath!));
    }

    [Fact]
    public void SaveWeightsOnly_WritesWeightsOnlyCheckpoints()
    {
        using var root = new TempDirectory();
        var checkpoint = new ModelCheckpoint(root.Combine("ckpt"), saveWeightsOnly: true);

        new Trainer(Options(root, checkpoint, 1)).Fit(new BoringModel(), Train);

        var saved = Checkpoint.Load(checkpoint.BestModelPath!);
        Assert.True(saved.WeightsOnly);
        Assert.Equal(0, saved.OptimizerCount);
    }

    [Fact]
    public void DefaultFolder_IsTheFirstLoggersCheckpointsElseTheRootsCheckpoints()
    {
        using var root = new TempDirectory();
        var withLogger = new ModelCheckpoint();
        var csv = new CsvLogger(root.Combine("logs"));
        new Trainer(Options(root, withLogger, 1) with { Loggers = [csv] }).Fit(new BoringModel(), Train);
        var withoutLogger = new ModelCheckpoint();
        new Trainer(Options(root, withoutLogger, 1)).Fit(new BoringModel(), Train);

        Assert.Equal(Path.Combine(csv.LogDir, "checkpoints"), withLogger.DirPath);
        Assert.Equal(root.Combine("checkpoints"), withoutLogger.DirPath);
        Assert.True(File.Exists(withLogger.BestModelPath));
        Assert.True(File.Exists(withoutLogger.BestModelPath));
    }

    [Fact]
    public void MissingMonitoredMetric_AfterValidation_FailsListingTheAvailableMetrics()
    {
        using var root = new TempDirectory();
        var checkpoint = new ModelCheckpoint(root.Combine("ckpt"), monitor: "val_acc");

        var error = Assert.Throws<InvalidOperationException>(() =>
            new Trainer(Options(root, checkpoint, 1)).Fit(new ScriptedValLoss(0.1), Train, Val));

        Assert.Contains("monitor: \"val_acc\"", error.Message);
        Assert.Contains("train_loss", error.Message);
        Assert.Contains("val_loss", error.Message);
    }

    [Fact]
    public void State_RoundTripsThroughTheCheckpointFile()
    {
        using var root = new TempDirectory();
        double[] losses = [0.5, 0.3, 0.6];
        var checkpoint = new ModelCheckpoint(root.Combine("ckpt"), monitor: "val_loss", saveTopK: 2, saveLast: true);
        new Trainer(Options(root, checkpoint, losses.Length)).Fit(new ScriptedValLoss(losses), Train, Val);

        var state = (System.Text.Json.Nodes.JsonObject)Checkpoint.Load(checkpoint.LastModelPath!).Callbacks[checkpoint.StateKey]!;
        var restored = new ModelCheckpoint(root.Combine("ckpt"), monitor: "val_loss", saveTopK: 2, saveLast: true);
        restored.LoadState(state);
        var moved = new ModelCheckpoint(root.Combine("elsewhere"), monitor: "val_loss", saveTopK: 2);
        moved.LoadState(state);

        Assert.Equal(checkpoint.BestModelPath, restored.BestModelPath);
        Assert.Equal(checkpoint.BestModelScore, restored.BestModelScore);
        Assert.Equal(checkpoint.BestKModels, restored.BestKModels);
        Assert.Equal(checkpoint.KthBestModelPath, restored.KthBestModelPath);
        Assert.Equal(checkpoint.KthValue, restored.KthValue);
        Assert.Equal(checkpoint.LastModelPath, restored.LastModelPath);
        Assert.Equal(checkpoint.BestModelPath, moved.BestModelPath);
        Assert.Empty(moved.BestKModels);
        Assert.Null(moved.BestModelScore);
    }

    [Fact]
    public void State_BeforeAnySave_SerializesInfiniteScores()
    {
        var checkpoint = new ModelCheckpoint(monitor: "val_loss");
        var restored = new ModelCheckpoint(monitor: "val_loss");

        restored.LoadState(System.Text.Json.Nodes.JsonNode.Parse(checkpoint.SaveState().ToJsonString())!.AsObject());

        Assert.Equal(double.PositiveInfinity, restored.KthValue);
    }

    [Fact]
    public void ResumeFromLast_ContinuesTheRankingAndTheRemainingEpochs()
    {
        using var root = new TempDirectory();
        double[] losses = [0.5, 0.3, 0.6, 0.2];
        ModelCheckpoint Callback() => new(root.Combine("ckpt"), "{epoch}-{val_loss:.2f}", monitor: "val_loss", saveTopK: 2, saveLast: true);
        var first = Callback();
        new Trainer(Options(root, first, 2)).Fit(new ScriptedValLoss(losses), Train, Val);

        var second = Callback();
        var counter = new CountBatches();
        var trainer = new Trainer(Options(root, second, losses.Length) with { Callbacks = [second, counter] });
        trainer.Fit(new ScriptedValLoss(losses), Train, Val, ckptPath: "last");

        Assert.Equal((losses.Length - 2) * BatchesPerEpoch, counter.Batches);
        Assert.Equal(losses.Length * BatchesPerEpoch, trainer.GlobalStep);
        // The restored top-2 (epochs 0 and 1) competed with the new epochs: 0.3 and 0.2 remain.
        Assert.Equal(new[] { Name(1, 0.3), Name(3, 0.2), "last.ckpt" }.Order(StringComparer.Ordinal), Files(second.DirPath!));
        Assert.Equal(Path.Combine(second.DirPath!, Name(3, 0.2)), second.BestModelPath);
    }

    [Fact]
    public void ValidateWithBest_LoadsTheBestCheckpointsWeights()
    {
        using var root = new TempDirectory();
        double[] losses = [0.5, 0.1, 0.6];
        var bestEpoch = Array.IndexOf(losses, losses.Min());
        var checkpoint = new ModelCheckpoint(root.Combine("ckpt"), monitor: "val_loss");
        var snapshots = new WeightsAtEpochEnd();
        var trainer = new Trainer(Options(root, checkpoint, losses.Length) with { Callbacks = [checkpoint, snapshots] });
        var model = new ScriptedValLoss(losses);
        trainer.Fit(model, Train, Val);
        Assert.NotEqual(snapshots.Weights[bestEpoch], Weights(model));

        trainer.Validate(model, Val, ckptPath: "best");

        Assert.Equal(bestEpoch, Checkpoint.Load(checkpoint.BestModelPath!).Epoch);
        Assert.Equal(snapshots.Weights[bestEpoch], Weights(model));
    }

    [Theory]
    [InlineData("{epoch}-{val_loss:.2f}", "epoch=2-val_loss=0.12.ckpt", true)]
    [InlineData("{epoch:03d}", "epoch=002.ckpt", true)]
    [InlineData("epoch={epoch}-validation_loss={val_loss:.2f}", "epoch=2-validation_loss=0.12.ckpt", false)]
    [InlineData("{missing:d}", "missing=0.ckpt", true)]
    [InlineData("{val_loss}", "val_loss=0.123456.ckpt", true)]
    [InlineData("{val_loss:.3e}", "val_loss=1.235e-01.ckpt", true)]
    [InlineData("{val_loss:>8.3f}", "val_loss=   0.123.ckpt", true)]
    [InlineData("run-{step}", "run-step=7.ckpt", true)]
    public void FormatCheckpointName_FollowsPythonFormatSpecs(string template, string expected, bool insertNames)
    {
        var checkpoint = new ModelCheckpoint(filename: template, autoInsertMetricName: insertNames);
        var metrics = new Dictionary<string, double> { ["epoch"] = 2, ["step"] = 7, ["val_loss"] = 0.123456 };

        Assert.Equal(expected, checkpoint.FormatCheckpointName(metrics));
    }

    [Fact]
    public void FormatCheckpointName_WithVersion_AppendsTheSuffix()
    {
        var checkpoint = new ModelCheckpoint(filename: "{epoch}");
        Assert.Equal("epoch=5-v2.ckpt", checkpoint.FormatCheckpointName(new Dictionary<string, double> { ["epoch"] = 5 }, version: 2));
    }

    [Fact]
    public void FormatCheckpointName_WholeNumberSpecForAFraction_NamesTheTemplate()
    {
        var checkpoint = new ModelCheckpoint(filename: "{val_loss:d}");
        var error = Assert.Throws<FormatException>(() => checkpoint.FormatCheckpointName(new Dictionary<string, double> { ["val_loss"] = 0.5 }));
        Assert.Contains("'{val_loss:d}'", error.Message);
        Assert.Contains("whole number", error.Message);
    }

    [Fact]
    public void InvalidMode_ListsTheLegalValues()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new ModelCheckpoint(mode: "lowest"));
        Assert.Contains("mode = \"lowest\"", error.Message);
        Assert.Contains("\"min\", \"max\"", error.Message);
    }

    [Fact]
    public void SeveralTriggers_AreRefusedAsMutuallyExclusive()
    {
        var error = Assert.Throws<ArgumentException>(() => new ModelCheckpoint(everyNTrainSteps: 3, everyNEpochs: 2));
        Assert.Contains("everyNTrainSteps = 3, everyNEpochs = 2", error.Message);
        Assert.Contains("mutually exclusive", error.Message);
        Assert.Throws<ArgumentException>(() => new ModelCheckpoint(everyNTrainSteps: 3, trainTimeInterval: TimeSpan.FromMinutes(1)));
    }

    [Theory]
    [InlineData(-2, "val_loss", "saveTopK = -2")]
    [InlineData(3, null, "saveTopK = 3 with monitor = null")]
    public void InvalidSaveTopK_IsRefusedWithTheReason(int saveTopK, string? monitor, string expected)
    {
        var error = Assert.ThrowsAny<ArgumentException>(() => new ModelCheckpoint(monitor: monitor, saveTopK: saveTopK));
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void StateKey_TellsCallbacksWithDifferentSchedulesApart()
    {
        Assert.NotEqual(new ModelCheckpoint(monitor: "val_loss").StateKey, new ModelCheckpoint(monitor: "val_loss", everyNTrainSteps: 5).StateKey);
        Assert.NotEqual(new ModelCheckpoint(monitor: "val_loss").StateKey, new ModelCheckpoint(monitor: "val_loss", mode: "max").StateKey);
        Assert.Equal(new ModelCheckpoint(monitor: "val_loss").StateKey, new ModelCheckpoint(monitor: "val_loss").StateKey);
    }

    private static Dictionary<string, double> Metrics(int epoch, double valLoss) => new() { ["epoch"] = epoch, ["val_loss"] = valLoss };

    private static float[] Weights(LightningModule module) => module.parameters().SelectMany(p => p.data<float>().ToArray()).ToArray();

    /// <summary>Logs <c>val_loss</c> = the scripted value of the current epoch, whatever the weights.</summary>
    internal sealed class ScriptedValLoss : BoringModel
    {
        private readonly double[] _valLosses;

        public ScriptedValLoss(params double[] valLosses) => _valLosses = valLosses;

        public override void ValidationStep(Tensor batch, int batchIdx) =>
            Log("val_loss", _valLosses[Math.Min(Trainer!.CurrentEpoch, _valLosses.Length - 1)]);
    }

    private sealed class SlowModel(TimeSpan delay) : BoringModel
    {
        public override Tensor? TrainingStep(Tensor batch, int batchIdx)
        {
            Thread.Sleep(delay);
            return base.TrainingStep(batch, batchIdx);
        }
    }

    private sealed class WeightsAtEpochEnd : Callback
    {
        public List<float[]> Weights { get; } = [];

        public override void OnTrainEpochEnd(Trainer trainer, LightningModule module) => Weights.Add(ModelCheckpointTests.Weights(module));
    }

    private sealed class CountBatches : Callback
    {
        public int Batches { get; private set; }

        public override void OnTrainBatchEnd(Trainer trainer, LightningModule module, double? loss, object? batch, int batchIdx) => Batches++;
    }
}
