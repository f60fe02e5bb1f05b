using System.Text.Json.Nodes;
using Lightning.Callbacks;
using Lightning.Checkpoints;
using Lightning.Testing;
using static Lightning.Testing.TestTrainer;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Callbacks;

public class EarlyStoppingTests
{
    private const int BatchesPerEpoch = 3;

    private static TrainerOptions Options(TempDirectory root, int maxEpochs, params Callback[] callbacks) => Quiet(root, callbacks) with { MaxEpochs = maxEpochs };

    private static IReadOnlyList<Tensor> Train => RandomBatches.Create(BatchesPerEpoch, seed: 1);
    private static IReadOnlyList<Tensor> Val => RandomBatches.Create(1, seed: 2);

    [Fact]
    public void Patience_StopsAfterThatManyValidationsWithoutImprovement()
    {
        using var root = new TempDirectory();
        double[] losses = [0.5, 0.4, 0.45, 0.41, 0.42, 0.3, 0.2, 0.1];
        const int patience = 3;
        var bestEpoch = 1; // 0.4; the next three are worse
        var stopping = new EarlyStopping("val_loss", patience: patience);
        var trainer = new Trainer(Options(root, losses.Length, stopping));

        trainer.Fit(new ScriptedValLoss(losses), Train, Val);

        Assert.Equal(bestEpoch + patience, stopping.StoppedEpoch);
        Assert.Equal(bestEpoch + patience + 1, trainer.CurrentEpoch);
        Assert.Equal((bestEpoch + patience + 1) * BatchesPerEpoch, trainer.GlobalStep);
        Assert.Equal(patience, stopping.WaitCount);
        Assert.Equal(losses[bestEpoch], stopping.BestScore);
        Assert.True(trainer.ShouldStop);
        Assert.Contains("did not improve in the last 3 records", stopping.StoppingReason);
    }

    [Fact]
    public void MinEpochs_KeepsTrainingPastTheStopRequest()
    {
        using var root = new TempDirectory();
        double[] losses = [0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
        const int minEpochs = 5;
        var stopping = new EarlyStopping("val_loss", patience: 1);
        var trainer = new Trainer(Options(root, losses.Length, stopping) with { MinEpochs = minEpochs });

        trainer.Fit(new ScriptedValLoss(losses), Train, Val);

        Assert.Equal(minEpochs, trainer.CurrentEpoch);
        Assert.Equal(minEpochs - 1, stopping.StoppedEpoch);
        Assert.Equal(minEpochs - 1, stopping.WaitCount);
    }

    [Fact]
    public void MaxMode_WithMinDelta_CountsSmallGainsAsNoImprovement()
    {
        using var root = new TempDirectory();
        double[] accuracies = [0.50, 0.60, 0.605, 0.61, 0.90];
        var stopping = new EarlyStopping("val_loss", mode: "max", minDelta: 0.02, patience: 2);
        var trainer = new Trainer(Options(root, accuracies.Length, stopping));

        trainer.Fit(new ScriptedValLoss(accuracies), Train, Val);

        // 0.605 and 0.61 improve on 0.60 by less than 0.02: two checks without improvement.
        Assert.Equal(3, stopping.StoppedEpoch);
        Assert.Equal(0.60, stopping.BestScore);
    }

    [Theory]
    [InlineData(0.25, null, 2)]
    [InlineData(null, 0.75, 3)]
    public void Thresholds_StopAtOnce(double? stoppingThreshold, double? divergenceThreshold, int expectedEpoch)
    {
        using var root = new TempDirectory();
        double[] losses = [0.5, 0.4, 0.2, 0.8, 0.1];
        var stopping = new EarlyStopping("val_loss", patience: 10, stoppingThreshold: stoppingThreshold, divergenceThreshold: divergenceThreshold);
        var trainer = new Trainer(Options(root, losses.Length, stopping));

        trainer.Fit(new ScriptedValLoss(losses), Train, Val);

        Assert.Equal(expectedEpoch, stopping.StoppedEpoch);
        Assert.Equal(expectedEpoch + 1, trainer.CurrentEpoch);
        Assert.Contains(stoppingThreshold is null ? "Divergence threshold reached" : "Stopping threshold reached", stopping.StoppingReason);
    }

    [Fact]
    public void CheckFinite_StopsOnNaN()
    {
        using var root = new TempDirectory();
        double[] losses = [0.5, double.NaN, 0.1];
        var stopping = new EarlyStopping("val_loss", patience: 10);
        var trainer = new Trainer(Options(root, losses.Length, stopping));

        trainer.Fit(new ScriptedValLoss(losses), Train, Val);

        Assert.Equal(1, stopping.StoppedEpoch);
        Assert.Equal(2, trainer.CurrentEpoch);
        Assert.Contains("is not finite", stopping.StoppingReason);
    }

    [Fact]
    public void MissingMetric_Strict_FailsListingTheAvailableMetrics()
    {
        using var root = new TempDirectory();
        var stopping = new EarlyStopping("val_acc");

        var error = Assert.Throws<InvalidOperationException>(() =>
            new Trainer(Options(root, 2, stopping)).Fit(new ScriptedValLoss(0.5), Train, Val));

        Assert.Contains("'val_acc'", error.Message);
        Assert.Contains("val_loss", error.Message);
        Assert.Contains("train_loss", error.Message);
    }

    [Fact]
    public void MissingMetric_NotStrict_TrainsOn()
    {
        using var root = new TempDirectory();
        var stopping = new EarlyStopping("val_acc", strict: false, patience: 0);
        var trainer = new Trainer(Options(root, 3, stopping));

        trainer.Fit(new ScriptedValLoss(0.5), Train, Val);

        Assert.Equal(3, trainer.CurrentEpoch);
        Assert.False(trainer.ShouldStop);
    }

    [Fact]
    public void WithoutValidation_ChecksATrainingMetricAtEpochEnds()
    {
        using var root = new TempDirectory();
        var stopping = new EarlyStopping("constant", patience: 2);
        var trainer = new Trainer(Options(root, 10, stopping));

        trainer.Fit(new ConstantTrainMetric(), Train);

        // The first check sets the best score; two more without improvement stop.
        Assert.Equal(2, stopping.StoppedEpoch);
        Assert.Equal(3, trainer.CurrentEpoch);
    }

    [Fact]
    public void ValidationInsideEpochs_ChecksAfterEachValidationRun()
    {
        using var root = new TempDirectory();
        var stopping = new EarlyStopping("val_loss", patience: 2);
        var options = Options(root, 5, stopping) with { ValCheckInterval = 1, NumSanityValSteps = 0 };
        var trainer = new Trainer(options);

        trainer.Fit(new ScriptedValLoss(0.5), RandomBatches.Create(4, seed: 1), Val);

        // A check after every batch: best at the first, then two without improvement; the epoch stops at the third batch.
        Assert.Equal(0, stopping.StoppedEpoch);
        Assert.Equal(3, trainer.GlobalStep);
    }

    [Fact]
    public void State_RoundTripsThroughACheckpoint_AndAResumedFitKeepsItsPatience()
    {
        using var root = new TempDirectory();
        double[] losses = [0.5, 0.6, 0.7, 0.8, 0.9];
        var path = root.Combine("after-epoch-1.ckpt");
        var stopping = new EarlyStopping("val_loss", patience: 3);
        var saver = new SaveAtEpochEnd(1, path);
        new Trainer(Options(root, 2, stopping, saver)).Fit(new ScriptedValLoss(losses), Train, Val);

        var saved = (JsonObject)Checkpoint.Load(path).Callbacks[stopping.StateKey]!;
        var restored = new EarlyStopping("val_loss", patience: 3);
        restored.LoadState(saved);
        Assert.Equal(1, restored.WaitCount);
        Assert.Equal(losses[0], restored.BestScore);

        var resumed = new EarlyStopping("val_loss", patience: 3);
        var trainer = new Trainer(Options(root, losses.Length, resumed));
        trainer.Fit(new ScriptedValLoss(losses), Train, Val, ckptPath: path);

        // One non-improving check came before the checkpoint; two more after it make three.
        Assert.Equal(3, resumed.StoppedEpoch);
        Assert.Equal(4, trainer.CurrentEpoch);
    }

    [Fact]
    public void State_BeforeAnyCheck_SerializesTheInfiniteBestScore()
    {
        var stopping = new EarlyStopping("val_loss", mode: "max");
        var restored = new EarlyStopping("val_loss", mode: "max");

        restored.LoadState(JsonNode.Parse(stopping.SaveState().ToJsonString())!.AsObject());

        Assert.Equal(double.NegativeInfinity, restored.BestScore);
    }

    [Fact]
    public void InvalidMode_ListsTheLegalValues()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new EarlyStopping("val_loss", mode: "auto"));
        Assert.Contains("mode = \"auto\"", error.Message);
        Assert.Contains("\"min\", \"max\"", error.Message);
    }

    [Fact]
    public void InvalidArguments_NameTheValueAndTheRule()
    {
        Assert.Contains("patience = -1", Assert.Throws<ArgumentOutOfRangeException>(() => new EarlyStopping("val_loss", patience: -1)).Message);
        Assert.Contains("minDelta = -0.1", Assert.Throws<ArgumentOutOfRangeException>(() => new EarlyStopping("val_loss", minDelta: -0.1)).Message);
        Assert.ThrowsAny<ArgumentException>(() => new EarlyStopping(" "));
    }

    [Fact]
    public void StateKey_IncludesMonitorAndMode()
    {
        Assert.NotEqual(new EarlyStopping("val_loss").StateKey, new EarlyStopping("val_acc").StateKey);
        Assert.NotEqual(new EarlyStopping("val_loss").StateKey, new EarlyStopping("val_loss", mode: "max").StateKey);
    }

    /// <summary>Logs <c>val_loss</c> = the scripted value of the current epoch.</summary>
    private sealed class ScriptedValLoss(params double[] valLosses) : BoringModel
    {
        public override void ValidationStep(Tensor batch, int batchIdx) =>
            Log("val_loss", valLosses[Math.Min(Trainer!.CurrentEpoch, valLosses.Length - 1)]);
    }

    private sealed class ConstantTrainMetric : BoringModel
    {
        public override Tensor? TrainingStep(Tensor batch, int batchIdx)
        {
            Log("constant", 1.0);
            return base.TrainingStep(batch, batchIdx);
        }
    }

    /// <summary>Saves after the monitoring callbacks, so the checkpoint holds the early-stopping state of that epoch.</summary>
    private sealed class SaveAtEpochEnd(int epoch, string path) : Callback
    {
        public override bool RunsLast => true;

        public override void OnTrainEpochEnd(Trainer trainer, LightningModule module)
        {
            if (trainer.CurrentEpoch == epoch) trainer.SaveCheckpoint(path);
        }
    }
}
