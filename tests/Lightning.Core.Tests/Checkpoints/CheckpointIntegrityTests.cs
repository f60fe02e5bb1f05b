using System.IO.Compression;
using System.Runtime.InteropServices;
using Lightning.Testing;

namespace Lightning.Core.Tests.Checkpoints;

/// <summary>Weights that do not fit the module, or bytes damaged inside an intact zip, are refused with the culprit named.</summary>
public class CheckpointIntegrityTests
{
    [Fact]
    public void LoadingIntoAModuleOfAnotherShape_NamesTheEntryAndBothShapes()
    {
        using var root = new TempDirectory();
        var path = SavedBoringModel(root);

        var error = Assert.Throws<InvalidDataException>(() => LightningModule.LoadFromCheckpoint<BoringModel>(path, new { inFeatures = 16 }));

        Assert.Contains("'layer.weight'", error.Message);
        Assert.Contains("[2, 32]", error.Message);   // in the file (BoringModel's default 32 inputs)
        Assert.Contains("[2, 16]", error.Message);   // in the module asked for
    }

    [Fact]
    public void DamagedBytesInsideTheWeightsEntry_AreRefusedNamingTheEntry_NotLoaded()
    {
        using var root = new TempDirectory();
        var model = new BoringModel();
        var path = SavedBoringModel(root, model);
        // Find the weight matrix's raw floats inside the (stored, uncompressed) zip entry and flip one byte of them.
        var weights = MemoryMarshal.AsBytes(model.state_dict()["layer.weight"].data<float>().ToArray().AsSpan()).ToArray();
        var file = File.ReadAllBytes(path);
        var at = file.AsSpan().IndexOf(weights);
        Assert.True(at > 0, "the weights are not stored as they are in the checkpoint");
        file[at + 17] ^= 0x40;
        File.WriteAllBytes(path, file);
        using (var zip = ZipFile.OpenRead(path)) Assert.NotNull(zip.GetEntry("state_dict.bin"));   // still a readable zip

        var error = Assert.ThrowsAny<Exception>(() => LightningModule.LoadFromCheckpoint<BoringModel>(path));

        Assert.IsType<InvalidDataException>(error);
        Assert.Contains(path, error.Message);
        Assert.Contains("state_dict.bin", error.Message);
    }

    private static string SavedBoringModel(TempDirectory root, BoringModel? model = null)
    {
        var path = root.Combine("boring.ckpt");
        var trainer = new Trainer(TestTrainer.Quiet(root) with { MaxEpochs = 1 });
        trainer.Fit(model ?? new BoringModel(), RandomBatches.Create(2));
        trainer.SaveCheckpoint(path);
        return path;
    }
}
