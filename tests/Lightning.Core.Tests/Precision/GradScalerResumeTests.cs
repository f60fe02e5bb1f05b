using Lightning.Checkpoints;
using Lightning.Precision;
using Lightning.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Precision;

/// <summary>
/// The GradScaler's scale and growth tracker survive a checkpoint. "16-mixed" (the precision that owns a scaler) needs
/// CUDA, so on the CPU the same plugin runs with bfloat16 autocast and a scaler: the state path is the same.
/// </summary>
public class GradScalerResumeTests
{
    [Fact]
    public void GradScalerState_ResumesWhereTheUninterruptedRunWouldBe()
    {
        using var root = new TempDirectory();
        var path = root.Combine("epoch-0.ckpt");
        // 4 clean steps per epoch, growth every 3: the scale doubles after steps 3 and 6.
        var straightScaler = new GradScaler(initScale: 1024, growthInterval: 3);
        var straight = Fit(root, straightScaler, maxEpochs: 2);

        var firstScaler = new GradScaler(initScale: 1024, growthInterval: 3);
        var first = Fit(root, firstScaler, maxEpochs: 1);
        first.Trainer.SaveCheckpoint(path);
        var resumedScaler = new GradScaler(initScale: 1024, growthInterval: 3);
        var resumed = Fit(root, resumedScaler, maxEpochs: 2, ckptPath: path);

        Assert.Equal((2048.0, 1), (firstScaler.Scale, firstScaler.GrowthTracker));
        Assert.Contains(Checkpoint.Load(path).Callbacks, s => s.Value?.ToJsonString() == firstScaler.SaveState().ToJsonString());
        Assert.Equal((4096.0, 2), (straightScaler.Scale, straightScaler.GrowthTracker));
        Assert.Equal((straightScaler.Scale, straightScaler.GrowthTracker), (resumedScaler.Scale, resumedScaler.GrowthTracker));
        foreach (var (name, weight) in TestTrainer.Snapshot(straight.Model))
            TestTrainer.AssertClose(weight, TestTrainer.Snapshot(resumed.Model)[name], name, rtol: 0, atol: 0);
    }

    private static (BoringModel Model, Trainer Trainer) Fit(TempDirectory root, GradScaler scaler, int maxEpochs, string? ckptPath = null)
    {
        manual_seed(0);
        var model = new BoringModel();
        var trainer = new Trainer(TestTrainer.Quiet(root) with { MaxEpochs = maxEpochs, Precision = new MixedPrecision(DeviceType.CPU, ScalarType.BFloat16, scaler) });
        trainer.Fit(model, RandomBatches.Create(4), ckptPath: ckptPath);
        return (model, trainer);
    }
}
