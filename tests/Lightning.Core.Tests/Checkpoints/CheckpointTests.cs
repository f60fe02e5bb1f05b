using System.IO.Compression;
using System.Text.Json.Nodes;
using Lightning.Checkpoints;
using Lightning.Testing;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Checkpoints;

public class CheckpointTests
{
    [Fact]
    public void Checkpoint_RoundTrip_RestoresIdenticalWeightsAndOptimizerState()
    {
        using var root = new TempDirectory();
        var model = new BoringModel.WithAdam();
        var trainer = new Trainer(new TrainerOptions { MaxEpochs = 2, DefaultRootDir = root.Path, EnableProgressBar = false });
        trainer.Fit(model, RandomBatches.Create(6));
        var path = trainer.CheckpointCallback!.BestModelPath!;

        var checkpoint = Checkpoint.Load(path);
        var restored = LightningModule.LoadFromCheckpoint<BoringModel.WithAdam>(path);
        var optimizer = (OptimizerHelper)optim.Adam(restored.parameters(), 0.5);
        checkpoint.RestoreOptimizers([optimizer]);

        Assert.Equal(1, checkpoint.Epoch);
        Assert.Equal(12, checkpoint.GlobalStep);
        Assert.Equal(typeof(BoringModel.WithAdam).FullName, checkpoint.ModuleType);
        foreach (var (name, tensor) in model.state_dict())
            Assert.Equal(tensor.data<float>().ToArray(), restored.state_dict()[name].data<float>().ToArray());
        Assert.Equal(StateBytes((OptimizerHelper)trainer.Optimizers[0]), StateBytes(optimizer));
        Assert.Equal(0.01, restored.Lr);
        Assert.False(restored.training);
    }

    [Fact]
    public void LoadFromCheckpoint_WithArguments_OverridesAndCompletesTheConstructor()
    {
        using var root = new TempDirectory();
        var trainer = new Trainer(new TrainerOptions { MaxEpochs = 1, DefaultRootDir = root.Path, EnableProgressBar = false });
        var model = new AutoEncoder(nn.Sequential(nn.Linear(6, 2)), nn.Sequential(nn.Linear(2, 6)), lr: 0.02);
        trainer.Fit(model, RandomBatches.Create(3, features: 6));

        var restored = LightningModule.LoadFromCheckpoint<AutoEncoder>(trainer.CheckpointCallback!.BestModelPath!,
            new { encoder = nn.Sequential(nn.Linear(6, 2)), decoder = nn.Sequential(nn.Linear(2, 6)) });

        Assert.Equal(0.02, restored.Lr);
        Assert.Equal(0.02, restored.Hparams["lr"]);
        using var x = randn(4, 6);
        Assert.True(model.Encoder.forward(x).allclose(restored.Encoder.forward(x)));
    }

    [Fact]
    public void LoadFromCheckpoint_MissingConstructorArgument_NamesItAndWhatWasSaved()
    {
        using var root = new TempDirectory();
        var trainer = new Trainer(new TrainerOptions { MaxEpochs = 1, DefaultRootDir = root.Path, EnableProgressBar = false });
        trainer.Fit(new AutoEncoder(nn.Sequential(nn.Linear(6, 2)), nn.Sequential(nn.Linear(2, 6))), RandomBatches.Create(2, features: 6));

        var error = Assert.Throws<InvalidOperationException>(() =>
            LightningModule.LoadFromCheckpoint<AutoEncoder>(trainer.CheckpointCallback!.BestModelPath!));

        Assert.Contains("'encoder' is neither a saved hyperparameter nor a given argument", error.Message);
        Assert.Contains("Saved hyperparameters: [lr]", error.Message);
    }

    [Fact]
    public void SaveHyperparameters_WithAModule_IsRefusedWithTheName()
    {
        var error = Assert.Throws<ArgumentException>(() => new ModuleInHparams());
        Assert.Contains("Hyperparameter 'encoder' is a Sequential", error.Message);
    }

    [Fact]
    public void Checkpoint_FromANewerFormatVersion_IsRefused()
    {
        using var root = new TempDirectory();
        var path = SavedCheckpoint(root);
        RewriteMetadata(path, m => m["format_version"] = Checkpoint.CurrentFormatVersion + 1);

        var error = Assert.Throws<NotSupportedException>(() => Checkpoint.Load(path));
        Assert.Contains($"format version {Checkpoint.CurrentFormatVersion + 1}", error.Message);
        Assert.Contains($"reads versions up to {Checkpoint.CurrentFormatVersion}", error.Message);
    }

    [Fact]
    public void Checkpoint_Truncated_IsRefusedAsCorrupted()
    {
        using var root = new TempDirectory();
        var path = SavedCheckpoint(root);
        var bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);

        var error = Assert.Throws<InvalidDataException>(() => Checkpoint.Load(path));
        Assert.Contains($"Checkpoint '{path}' is corrupted", error.Message);
    }

    [Fact]
    public void Checkpoint_WithoutWeights_IsRefusedNamingTheEntry()
    {
        using var root = new TempDirectory();
        var path = SavedCheckpoint(root);
        using (var archive = ZipFile.Open(path, ZipArchiveMode.Update)) archive.GetEntry("state_dict.bin")!.Delete();

        var error = Assert.Throws<InvalidDataException>(() => Checkpoint.Load(path));
        Assert.Contains("entry 'state_dict.bin' is missing", error.Message);
    }

    [Fact]
    public void SaveCheckpoint_LeavesNoTemporaryFiles()
    {
        using var root = new TempDirectory();
        var path = SavedCheckpoint(root);

        Assert.Equal(new[] { path }, Directory.GetFiles(Path.GetDirectoryName(path)!));
    }

    [Fact]
    public void SaveCheckpoint_AllocatesAFractionOfTheStateOnTheManagedHeap()
    {
        // A checkpoint per epoch that allocated a few times its size caused extra collections, and after each one libtorch
        // pages its freed buffers in again: that cost more than the save itself.
        using var root = new TempDirectory();
        var model = new BoringModel(inFeatures: 500_000);
        var trainer = new Trainer(new TrainerOptions { MaxEpochs = 1, DefaultRootDir = root.Path, EnableProgressBar = false,
            EnableModelSummary = false, EnableCheckpointing = false, Loggers = [] });
        trainer.Fit(model, RandomBatches.Create(1, features: 500_000));
        var path = root.Combine("wide.ckpt");
        trainer.SaveCheckpoint(path); // the first save rents the pooled buffers

        long before = GC.GetAllocatedBytesForCurrentThread();
        trainer.SaveCheckpoint(path);
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;

        long size = new FileInfo(path).Length;
        Assert.True(size > 4_000_000, $"checkpoint of {size} bytes");
        Assert.True(allocated < size / 20, $"saving a {size}-byte checkpoint allocated {allocated} bytes");
    }

    [Fact]
    public void CheckpointWrittenDuringAFit_IsOnDiskWhenFitReturns_AndAFailedWriteFailsTheFitLeavingNoTemporaryFile()
    {
        using var root = new TempDirectory();
        var written = root.Combine("during.ckpt");
        var during = new Trainer(new TrainerOptions { MaxEpochs = 1, DefaultRootDir = root.Path, EnableProgressBar = false, EnableModelSummary = false,
            Loggers = [], EnableCheckpointing = false, Callbacks = [new SaveOnFirstBatch(written)] });
        during.Fit(new BoringModel(), RandomBatches.Create(3));
        Assert.Equal(1, Checkpoint.Load(written).GlobalStep);

        // A folder where the file should be: the background write fails, and the fit reports it.
        var blocked = root.Combine("blocked.ckpt");
        Directory.CreateDirectory(blocked);
        var failing = new Trainer(new TrainerOptions { MaxEpochs = 1, DefaultRootDir = root.Path, EnableProgressBar = false, EnableModelSummary = false,
            Loggers = [], EnableCheckpointing = false, Callbacks = [new SaveOnFirstBatch(blocked)] });
        var error = Assert.Throws<IOException>(() => failing.Fit(new BoringModel(), RandomBatches.Create(3)));
        Assert.StartsWith("Writing a checkpoint failed", error.Message);
        Assert.Empty(Directory.EnumerateFiles(root.Path, "*.tmp"));
    }

    private sealed class SaveOnFirstBatch(string path) : Lightning.Callbacks.Callback
    {
        public override void OnTrainBatchEnd(Trainer trainer, LightningModule module, double? loss, object? batch, int batchIdx)
        {
            if (batchIdx == 0) trainer.SaveCheckpoint(path);
        }
    }

    private static string SavedCheckpoint(TempDirectory root)
    {
        var trainer = new Trainer(new TrainerOptions { MaxEpochs = 1, DefaultRootDir = root.Path, EnableProgressBar = false, Loggers = [] });
        trainer.Fit(new BoringModel(), RandomBatches.Create(2));
        return trainer.CheckpointCallback!.BestModelPath!;
    }

    private static void RewriteMetadata(string path, Action<JsonObject> change)
    {
        using var archive = ZipFile.Open(path, ZipArchiveMode.Update);
        var entry = archive.GetEntry("checkpoint.json")!;
        JsonObject metadata;
        using (var reader = entry.Open()) metadata = JsonNode.Parse(reader)!.AsObject();
        change(metadata);
        entry.Delete();
        using var writer = new StreamWriter(archive.CreateEntry("checkpoint.json").Open());
        writer.Write(metadata.ToJsonString());
    }

    private static byte[] StateBytes(OptimizerHelper optimizer)
    {
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true)) optimizer.save_state_dict(writer);
        return stream.ToArray();
    }

    private sealed class AutoEncoder : LightningModule<Tensor>
    {
        private readonly nn.Module<Tensor, Tensor> encoder, decoder;

        public AutoEncoder(nn.Module<Tensor, Tensor> encoder, nn.Module<Tensor, Tensor> decoder, double lr = 1e-3) : base(nameof(AutoEncoder))
        {
            (this.encoder, this.decoder, Lr) = (encoder, decoder, lr);
            SaveHyperparameters(new { lr });
            RegisterComponents();
        }

        public double Lr { get; }
        public nn.Module<Tensor, Tensor> Encoder => encoder;

        public override Tensor? TrainingStep(Tensor batch, int batchIdx) =>
            nn.functional.mse_loss(decoder.forward(encoder.forward(batch)), batch);

        public override OptimizerConfiguration ConfigureOptimizers() => optim.Adam(parameters(), Lr);
    }

    private sealed class ModuleInHparams : LightningModule<Tensor>
    {
        public ModuleInHparams() : base(nameof(ModuleInHparams)) => SaveHyperparameters(new { encoder = nn.Sequential(nn.Linear(1, 1)) });
        public override Tensor? TrainingStep(Tensor batch, int batchIdx) => null;
        public override OptimizerConfiguration ConfigureOptimizers() => optim.SGD(parameters(), 0.1);
    }
}
