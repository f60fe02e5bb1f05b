using System.IO.Compression;
using System.Text.Json.Nodes;
using Lightning.Callbacks;
using Lightning.Checkpoints;
using Lightning.Data;
using Lightning.Loggers;
using Lightning.Testing;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Checkpoints;

/// <summary>Resuming must be exact: same weights, bit for bit, as the run that was never interrupted.</summary>
public class ResumeTests
{
    private static TrainerOptions Quiet(TempDirectory root) => TestTrainer.Quiet(root) with { NumSanityValSteps = 0 };

    [Fact]
    public void TwoEpochsStraight_EqualOneEpochThenResume()
    {
        using var root = new TempDirectory();
        var straight = Train(root, Quiet(root) with { MaxEpochs = 2 });

        var first = Train(root, Quiet(root) with { MaxEpochs = 1 }, saveAfterFit: root.Combine("after-epoch-0.ckpt"));
        var resumed = Train(root, Quiet(root) with { MaxEpochs = 2 }, ckptPath: root.Combine("after-epoch-0.ckpt"), seed: 999);

        Assert.NotEqual(Weights(straight.Model), Weights(first.Model));
        Assert.Equal(Weights(straight.Model), Weights(resumed.Model));
        Assert.Equal(straight.Trainer.GlobalStep, resumed.Trainer.GlobalStep);
        Assert.Equal(2, resumed.Trainer.CurrentEpoch);
        Assert.Equal(Lr(straight.Trainer), Lr(resumed.Trainer));
    }

    [Fact]
    public void CheckpointFromInsideAnEpoch_ResumesToTheSameWeights()
    {
        using var root = new TempDirectory();
        var path = root.Combine("mid-epoch.ckpt");
        var straight = Train(root, Quiet(root) with { MaxEpochs = 3, Callbacks = [new SaveAtStep(13, path)] });

        var resumed = Train(root, Quiet(root) with { MaxEpochs = 3 }, ckptPath: path, seed: 12345);

        Assert.Equal(13, Checkpoint.Load(path).GlobalStep);
        Assert.Equal(Weights(straight.Model), Weights(resumed.Model));
        Assert.Equal(straight.Trainer.GlobalStep, resumed.Trainer.GlobalStep);
    }

    [Fact]
    public void FormatVersion1Checkpoint_WithTheRandomStateInItsMetadata_ResumesExactly()
    {
        using var root = new TempDirectory();
        var path = root.Combine("mid-epoch.ckpt");
        var straight = Train(root, Quiet(root) with { MaxEpochs = 3, Callbacks = [new SaveAtStep(13, path)] });
        var version1 = root.Combine("version-1.ckpt");
        var withoutRandomState = root.Combine("no-rng.ckpt");
        File.Copy(path, version1);
        File.Copy(path, withoutRandomState);
        RewriteAsVersion1(version1, keepRandomState: true);
        RewriteAsVersion1(withoutRandomState, keepRandomState: false);

        var resumed = Train(root, Quiet(root) with { MaxEpochs = 3 }, ckptPath: version1, seed: 12345);
        var unseeded = Train(root, Quiet(root) with { MaxEpochs = 3 }, ckptPath: withoutRandomState, seed: 12345);

        Assert.Equal(1, Checkpoint.Load(version1).FormatVersion);
        Assert.Equal(Weights(straight.Model), Weights(resumed.Model));
        // Dropout after the resume draws from the generator: without the saved state the weights differ.
        Assert.NotEqual(Weights(straight.Model), Weights(unseeded.Model));
    }

    [Fact]
    public void RandomStateOfTheWrongSize_IsRefusedBeforeTraining()
    {
        using var root = new TempDirectory();
        var path = root.Combine("mid-epoch.ckpt");
        Train(root, Quiet(root) with { MaxEpochs = 2, Callbacks = [new SaveAtStep(13, path)] });
        using (var archive = ZipFile.Open(path, ZipArchiveMode.Update))
        {
            archive.GetEntry("rng_state.bin")!.Delete();
            using var entry = archive.CreateEntry("rng_state.bin").Open();
            entry.Write(new byte[100]);
        }

        var error = Assert.Throws<InvalidDataException>(() => Train(root, Quiet(root) with { MaxEpochs = 2 }, ckptPath: path));
        Assert.Contains("random generator state has 100 bytes", error.Message);
    }

    /// <summary>Format version 1 kept libtorch's generator state as base64 in checkpoint.json, not in its own entry.</summary>
    private static void RewriteAsVersion1(string path, bool keepRandomState)
    {
        using var archive = ZipFile.Open(path, ZipArchiveMode.Update);
        var rngEntry = archive.GetEntry("rng_state.bin")!;
        byte[] rng;
        using (var reader = rngEntry.Open())
        using (var buffer = new MemoryStream())
        {
            reader.CopyTo(buffer);
            rng = buffer.ToArray();
        }
        rngEntry.Delete();
        var metadataEntry = archive.GetEntry("checkpoint.json")!;
        JsonObject metadata;
        using (var reader = metadataEntry.Open()) metadata = JsonNode.Parse(reader)!.AsObject();
        metadata["format_version"] = 1;
        metadata["rng_state"] = keepRandomState ? Convert.ToBase64String(rng) : null;
        metadataEntry.Delete();
        using var writer = new StreamWriter(archive.CreateEntry("checkpoint.json").Open());
        writer.Write(metadata.ToJsonString());
    }

    [Fact]
    public void CheckpointFromTheEpochEndHook_ResumesAtTheNextEpoch()
    {
        using var root = new TempDirectory();
        var path = root.Combine("epoch-end.ckpt");
        var straight = Train(root, Quiet(root) with { MaxEpochs = 3, Callbacks = [new SaveAtEpochEnd(0, path)] });

        var resumed = Train(root, Quiet(root) with { MaxEpochs = 3 }, ckptPath: path, seed: 7);

        Assert.Equal(Weights(straight.Model), Weights(resumed.Model));
        Assert.Equal(Lr(straight.Trainer), Lr(resumed.Trainer));
    }

    [Fact]
    public void CheckpointFromAValidationInsideTheEpoch_ResumesAtTheNextTrainingBatch()
    {
        using var root = new TempDirectory();
        var path = root.Combine("in-epoch-validation.ckpt");
        var options = Quiet(root) with { MaxEpochs = 1, ValCheckInterval = 0.5, LimitValBatches = 3 };
        var straight = Train(root, options with { Callbacks = [new SaveAfterFirstValidation(path)] }, val: ValBatches(3));

        var resumed = Train(root, options, ckptPath: path, seed: 77, val: ValBatches(3));

        Assert.Equal(5, (int)Checkpoint.Load(path).GlobalStep);
        Assert.Equal(10, resumed.Trainer.GlobalStep);
        Assert.Equal(Weights(straight.Model), Weights(resumed.Model));
    }

    [Fact]
    public void ModelCheckpoint_NeverDeletesTheFileTheFitResumedFrom()
    {
        using var root = new TempDirectory();
        var first = new Trainer(Quiet(root) with { MaxEpochs = 1, EnableCheckpointing = true });
        first.Fit(new DropoutModel(), Loader());
        var resumedFrom = first.CheckpointCallback!.BestModelPath!;

        var second = new Trainer(Quiet(root) with { MaxEpochs = 3, EnableCheckpointing = true });
        second.Fit(new DropoutModel(), Loader(), ckptPath: resumedFrom);

        Assert.Equal(resumedFrom, second.CkptPath);
        Assert.True(File.Exists(resumedFrom));
        Assert.NotEqual(resumedFrom, second.CheckpointCallback!.BestModelPath);
    }

    [Fact]
    public void WeightsOnlyCheckpoint_CannotResumeAFit()
    {
        using var root = new TempDirectory();
        var path = root.Combine("weights.ckpt");
        var run = Train(root, Quiet(root) with { MaxEpochs = 1 });
        run.Trainer.SaveCheckpoint(path, weightsOnly: true);

        Assert.Equal(0, Checkpoint.Load(path).OptimizerCount);
        var error = Assert.Throws<InvalidOperationException>(() => Train(root, Quiet(root) with { MaxEpochs = 2 }, ckptPath: path));
        Assert.Contains("holds weights only", error.Message);
    }

    [Fact]
    public void ValidateWithCheckpointPath_LoadsThoseWeights()
    {
        using var root = new TempDirectory();
        var path = root.Combine("trained.ckpt");
        var run = Train(root, Quiet(root) with { MaxEpochs = 1 }, saveAfterFit: path);
        var expected = new Trainer(Quiet(root)).Validate(run.Model, ValBatches());

        manual_seed(5);
        var fresh = new DropoutModel();
        var metrics = new Trainer(Quiet(root)).Validate(fresh, ValBatches(), ckptPath: path);

        Assert.Equal(expected["val_loss"], metrics["val_loss"]);
        Assert.Equal(Weights(run.Model), Weights(fresh));
    }

    [Fact]
    public void CkptPathLast_ResumesFromTheNewestCheckpointOfAnyLoggerVersionOfTheRun()
    {
        using var root = new TempDirectory();
        var batches = RandomBatches.Create(3);
        // Each process of a restarted run logs to the next version_N, and its ModelCheckpoint writes into version_N/checkpoints.
        (FlagTests.CountingModel Model, Trainer Trainer) Run(int maxEpochs, string? ckptPath)
        {
            var model = new FlagTests.CountingModel();
            var trainer = new Trainer(Quiet(root) with { MaxEpochs = maxEpochs, EnableCheckpointing = true, Loggers = [new CsvLogger(root.Path)] });
            trainer.Fit(model, batches, ckptPath: ckptPath);
            return (model, trainer);
        }
        string Written(int version, string name) => root.Combine("lightning_logs", $"version_{version}", "checkpoints", name);

        Run(maxEpochs: 1, ckptPath: null);
        var second = Run(maxEpochs: 2, ckptPath: "last");
        var third = Run(maxEpochs: 3, ckptPath: "last");

        Assert.Equal(Written(0, "epoch=0-step=3.ckpt"), second.Trainer.CkptPath);
        Assert.Equal(3, second.Model.TrainSteps);
        // Both earlier versions hold a checkpoint; the newest (version_1's, after epoch 1) is the one resumed.
        Assert.True(File.Exists(Written(0, "epoch=0-step=3.ckpt")));
        Assert.Equal(Written(1, "epoch=1-step=6.ckpt"), third.Trainer.CkptPath);
        Assert.Equal(3, third.Model.TrainSteps);
        Assert.Equal(9, third.Trainer.GlobalStep);
        Assert.Equal(root.Combine("lightning_logs", "version_2"), third.Trainer.LogDir);
    }

    private static (DropoutModel Model, Trainer Trainer) Train(TempDirectory root, TrainerOptions options, string? ckptPath = null,
        string? saveAfterFit = null, int seed = 0, List<IList<Tensor>>? val = null)
    {
        manual_seed(seed);
        var model = new DropoutModel();
        var trainer = new Trainer(options);
        trainer.Fit(model, Loader(), val, ckptPath: ckptPath);
        if (saveAfterFit is not null) trainer.SaveCheckpoint(saveAfterFit);
        return (model, trainer);
    }

    /// <summary>40 rows of 8 features in batches of 4, shuffled the same way each run (MidEpochResumeTests too).</summary>
    internal static IterableDataLoader Loader()
    {
        using var generator = new Generator(42);
        var x = randn([40, 8], generator: generator);
        var y = randn([40, 1], generator: generator);
        return utils.data.DataLoader(utils.data.TensorDataset(x, y), 4, new EpochShuffler(40, seed: 3));
    }

    private static List<IList<Tensor>> ValBatches(int count = 1)
    {
        using var generator = new Generator(9);
        return Enumerable.Range(0, count)
            .Select(_ => (IList<Tensor>)[randn([5, 8], generator: generator), randn([5, 1], generator: generator)]).ToList();
    }

    internal static float[] Weights(nn.Module module) =>
        module.parameters().SelectMany(p => p.detach().data<float>().ToArray()).ToArray();

    private static double Lr(Trainer trainer) => ((OptimizerHelper)trainer.Optimizers[0]).ParamGroups.First().LearningRate;

    /// <summary>Dropout draws from libtorch's generator, Adam keeps moments, StepLR changes the LR: all must resume exactly.</summary>
    private sealed class DropoutModel : LightningModule<IList<Tensor>>
    {
        private readonly Sequential net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1));

        public DropoutModel() : base(nameof(DropoutModel)) => RegisterComponents();

        public override Tensor? TrainingStep(IList<Tensor> batch, int batchIdx) =>
            nn.functional.mse_loss(net.forward(batch[0]), batch[1]);

        public override void ValidationStep(IList<Tensor> batch, int batchIdx) =>
            Log("val_loss", nn.functional.mse_loss(net.forward(batch[0]), batch[1]));

        public override OptimizerConfiguration ConfigureOptimizers()
        {
            var optimizer = optim.Adam(parameters(), 0.01);
            return new OptimizerConfiguration(optimizer, optim.lr_scheduler.StepLR(optimizer, 1, 0.7));
        }
    }

    private sealed class SaveAtStep(long step, string path) : Callback
    {
        public override void OnTrainBatchEnd(Trainer trainer, LightningModule module, double? loss, object? batch, int batchIdx)
        {
            if (trainer.GlobalStep == step) trainer.SaveCheckpoint(path);
        }
    }

    private sealed class SaveAfterFirstValidation(string path) : Callback
    {
        private bool _saved;

        // A flag, not File.Exists: during a fit checkpoints reach the disk in the background.
        public override void OnValidationEnd(Trainer trainer, LightningModule module)
        {
            if (_saved) return;
            trainer.SaveCheckpoint(path);
            _saved = true;
        }
    }

    private sealed class SaveAtEpochEnd(int epoch, string path) : Callback
    {
        public override bool RunsLast => true;

        public override void OnTrainEpochEnd(Trainer trainer, LightningModule module)
        {
            if (trainer.CurrentEpoch == epoch) trainer.SaveCheckpoint(path);
        }
    }
}
