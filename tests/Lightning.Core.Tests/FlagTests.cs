using Lightning.Callbacks;
using Lightning.Testing;
using TorchSharp;
using static Lightning.Testing.TestTrainer;
using static TorchSharp.torch;

namespace Lightning.Core.Tests;

public class FlagTests
{
    [Fact]
    public void MaxSteps_StopsMidEpoch()
    {
        using var root = new TempDirectory();
        var trainer = new Trainer(Quiet(root) with { MaxSteps = 7 });
        trainer.Fit(new BoringModel(), RandomBatches.Create(5));
        Assert.Equal(7, trainer.GlobalStep);
        Assert.Equal(2, trainer.CurrentEpoch);
    }

    [Fact]
    public void MinEpochs_KeepsTrainingWhenACallbackAsksToStop()
    {
        using var root = new TempDirectory();
        var trainer = new Trainer(Quiet(root) with { MaxEpochs = 10, MinEpochs = 3, Callbacks = [new StopAtOnce()] });
        trainer.Fit(new BoringModel(), RandomBatches.Create(2));
        Assert.Equal(3, trainer.CurrentEpoch);
        Assert.Equal(6, trainer.GlobalStep);
    }

    [Fact]
    public void AccumulateGradBatches_TwoBatchesOfB_EqualOneBatchOf2B()
    {
        using var root = new TempDirectory();
        var small = RandomBatches.Create(8, batchSize: 2, seed: 3);
        var large = Enumerable.Range(0, 4).Select(i => cat([small[2 * i], small[2 * i + 1]])).ToList();

        manual_seed(1);
        var accumulated = new BoringModel();
        var accumulatingTrainer = new Trainer(Quiet(root) with { MaxEpochs = 1, AccumulateGradBatches = 2 });
        accumulatingTrainer.Fit(accumulated, small);
        manual_seed(1);
        var reference = new BoringModel();
        new Trainer(Quiet(root) with { MaxEpochs = 1 }).Fit(reference, large);

        Assert.Equal(4, accumulatingTrainer.GlobalStep);
        foreach (var (name, weight) in reference.state_dict())
            Assert.True(weight.allclose(accumulated.state_dict()[name], rtol: 1e-5, atol: 1e-6), $"{name} differs");
    }

    [Theory]
    [InlineData(GradientClipAlgorithm.Norm)]
    [InlineData(GradientClipAlgorithm.Value)]
    public void GradientClipVal_ClipsBeforeEachStep(GradientClipAlgorithm algorithm)
    {
        using var root = new TempDirectory();
        var model = new GradientProbe(lr: 10);
        new Trainer(Quiet(root) with { MaxEpochs = 1, GradientClipVal = 0.01, GradientClipAlgorithm = algorithm }).Fit(model, RandomBatches.Create(3));

        Assert.Equal(3, model.Seen.Count);
        foreach (var (norm, largest) in model.Seen)
            if (algorithm == GradientClipAlgorithm.Norm) Assert.True(norm <= 0.01 + 1e-6, $"norm {norm}");
            else Assert.True(largest <= 0.01 + 1e-7, $"largest {largest}");
    }

    [Fact]
    public void FastDevRun_RunsNBatchesOfEachLoopAndWritesNothing()
    {
        using var root = new TempDirectory();
        var model = new CountingModel();
        var trainer = new Trainer(new TrainerOptions { DefaultRootDir = root.Path, FastDevRun = 2, EnableProgressBar = false, EnableModelSummary = false });
        trainer.Fit(model, RandomBatches.Create(10), RandomBatches.Create(10));

        Assert.Equal(2, model.TrainSteps);
        Assert.Equal(2, model.ValSteps);
        Assert.Empty(trainer.Loggers);
        Assert.Empty(Directory.GetFileSystemEntries(root.Path));
    }

    [Fact]
    public void EnableCheckpointingFalse_WritesNoCheckpointAnywhere()
    {
        using var root = new TempDirectory();
        // The default loggers stay on, so the run writes its version folder (where the checkpoints would go).
        var trainer = new Trainer(new TrainerOptions
        {
            MaxEpochs = 2, DefaultRootDir = root.Path, EnableProgressBar = false, EnableModelSummary = false, EnableCheckpointing = false,
        });

        trainer.Fit(new BoringModel(), RandomBatches.Create(3), RandomBatches.Create(2));

        Assert.Null(trainer.CheckpointCallback);
        Assert.True(File.Exists(Path.Combine(trainer.LogDir!, "metrics.csv")));
        Assert.Empty(Directory.GetFiles(root.Path, "*.ckpt*", SearchOption.AllDirectories));
        Assert.Empty(Directory.GetDirectories(root.Path, "checkpoints", SearchOption.AllDirectories));
    }

    [Fact]
    public void OverfitBatches_TrainsAndValidatesOnTheSameFirstBatches()
    {
        using var root = new TempDirectory();
        var model = new CountingModel();
        var train = RandomBatches.Create(10);
        new Trainer(Quiet(root) with { MaxEpochs = 2, OverfitBatches = 3, NumSanityValSteps = 0 }).Fit(model, train);

        Assert.Equal(6, model.TrainSteps);
        Assert.Equal(6, model.ValSteps);
        Assert.All(model.ValBatches, b => Assert.Contains(train.Take(3), t => ReferenceEquals(t, b)));
    }

    [Fact]
    public void ValCheckInterval_Fraction_ValidatesSeveralTimesPerEpoch()
    {
        using var root = new TempDirectory();
        var model = new CountingModel();
        new Trainer(Quiet(root) with { MaxEpochs = 2, ValCheckInterval = 0.25, LimitValBatches = 1, NumSanityValSteps = 0 })
            .Fit(model, RandomBatches.Create(8), RandomBatches.Create(3));
        Assert.Equal(8, model.ValRuns);
    }

    [Fact]
    public void ValCheckInterval_StepsAcrossEpochs_WithCheckValEveryNEpochNull()
    {
        using var root = new TempDirectory();
        var model = new CountingModel();
        new Trainer(Quiet(root) with { MaxEpochs = 3, ValCheckInterval = 4, CheckValEveryNEpoch = null, LimitValBatches = 1, NumSanityValSteps = 0 })
            .Fit(model, RandomBatches.Create(3), RandomBatches.Create(2));
        Assert.Equal(2, model.ValRuns); // after training batches 4 and 8 of 9
    }

    [Fact]
    public void CheckValEveryNEpoch_ValidatesOnlyThoseEpochs()
    {
        using var root = new TempDirectory();
        var model = new CountingModel();
        new Trainer(Quiet(root) with { MaxEpochs = 5, CheckValEveryNEpoch = 2, NumSanityValSteps = 0 })
            .Fit(model, RandomBatches.Create(2), RandomBatches.Create(2));
        Assert.Equal(2, model.ValRuns);
    }

    [Fact]
    public void NumSanityValSteps_RunsThatManyValidationBatchesFirst_AndForgetsTheirMetrics()
    {
        using var root = new TempDirectory();
        var model = new CountingModel();
        var trainer = new Trainer(Quiet(root) with { MaxEpochs = 0, NumSanityValSteps = 3 });
        trainer.Fit(model, RandomBatches.Create(2), RandomBatches.Create(5));
        Assert.Equal(3, model.ValSteps);
        Assert.False(trainer.CallbackMetrics.ContainsKey("val_loss"));
    }

    [Fact]
    public void LimitValBatches_CapsEveryValidation()
    {
        using var root = new TempDirectory();
        var model = new CountingModel();
        new Trainer(Quiet(root) with { MaxEpochs = 1, LimitValBatches = 2, NumSanityValSteps = 0 }).Fit(model, RandomBatches.Create(2), RandomBatches.Create(5));
        Assert.Equal(2, model.ValSteps);
    }

    [Fact]
    public void Profiler_Simple_PrintsTimesPerHookAtTheEnd()
    {
        using var root = new TempDirectory();
        var output = new StringWriter();
        var original = Console.Out;
        Console.SetOut(output);
        try
        {
            new Trainer(Quiet(root) with { MaxEpochs = 1, Profiler = "simple" }).Fit(new BoringModel(), RandomBatches.Create(3));
        }
        finally
        {
            Console.SetOut(original);
        }
        var report = output.ToString();
        Assert.Contains("FIT Profiler Report", report);
        Assert.Matches(@"training_step\s+\|\s+[\d.]+\s+\|\s+3\s+\|", report);
        Assert.Matches(@"on_train_batch_end\s+\|\s+[\d.]+\s+\|\s+3\s+\|", report);
    }

    [Fact]
    public void Deterministic_TurnsDeterministicAlgorithmsOnDuringTheRunOnly()
    {
        using var root = new TempDirectory();
        var model = new DeterminismProbe();
        new Trainer(Quiet(root) with { MaxEpochs = 1, Deterministic = true }).Fit(model, RandomBatches.Create(1));
        Assert.True(model.SeenOn);
        Assert.False(LibTorch.DeterministicAlgorithmsEnabled);
    }

    [Fact]
    public void DetectAnomaly_FindsTheNaNInBackward()
    {
        using var root = new TempDirectory();
        var trainer = new Trainer(Quiet(root) with { MaxEpochs = 1, DetectAnomaly = true });
        var error = Assert.ThrowsAny<Exception>(() => trainer.Fit(new NaNModel(), RandomBatches.Create(1)));
        Assert.Contains("nan", error.Message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public void Barebones_TurnsEverythingOffAndRefusesLog()
    {
        using var root = new TempDirectory();
        var trainer = new Trainer(new TrainerOptions { DefaultRootDir = root.Path, MaxEpochs = 1, Barebones = true });
        Assert.Empty(trainer.Callbacks);
        Assert.Empty(trainer.Loggers);
        var error = Assert.Throws<InvalidOperationException>(() => trainer.Fit(new BoringModel(), RandomBatches.Create(1)));
        Assert.Contains("Log('train_loss') is turned off by Barebones = true", error.Message);
    }

    [Fact]
    public void Barebones_WithLoggers_FailsUpFront()
    {
        var error = Assert.Throws<ArgumentException>(() => new Trainer(new TrainerOptions { Barebones = true, Loggers = [new Lightning.Loggers.CsvLogger("/tmp")] }));
        Assert.Contains("Barebones = true turns off loggers", error.Message);
    }

    [Fact]
    public void ReloadDataloadersEveryNEpochs_AsksTheDatamoduleAgain()
    {
        using var root = new TempDirectory();
        var data = new CountingDataModule();
        new Trainer(Quiet(root) with { MaxEpochs = 4, ReloadDataloadersEveryNEpochs = 2, NumSanityValSteps = 0 }).Fit(new CountingModel(), data);
        Assert.Equal(2, data.TrainLoaders);
        Assert.Equal(new[] { "prepare", "setup:Fit", "teardown:Fit" }, data.Calls);
    }

    [Theory]
    [InlineData(nameof(TrainerOptions.MinEpochs), "MinEpochs = 5 is not allowed: it must not exceed MaxEpochs = 2")]
    [InlineData(nameof(TrainerOptions.AccumulateGradBatches), "AccumulateGradBatches = 0 is not allowed: it must be 1 or more")]
    [InlineData(nameof(TrainerOptions.Profiler), "Profiler = \"fancy\" is not allowed: the profilers are null and \"simple\"")]
    [InlineData(nameof(TrainerOptions.CheckValEveryNEpoch), "CheckValEveryNEpoch = null is not allowed: step-driven validation needs ValCheckInterval as a batch count")]
    [InlineData(nameof(TrainerOptions.GradientClipVal), "GradientClipVal = -1 is not allowed: it must be greater than 0")]
    public void InvalidOptions_FailBeforeAnyWork(string option, string message)
    {
        TrainerOptions options = option switch
        {
            nameof(TrainerOptions.MinEpochs) => new() { MaxEpochs = 2, MinEpochs = 5 },
            nameof(TrainerOptions.AccumulateGradBatches) => new() { AccumulateGradBatches = 0 },
            nameof(TrainerOptions.Profiler) => new() { Profiler = "fancy" },
            nameof(TrainerOptions.CheckValEveryNEpoch) => new() { CheckValEveryNEpoch = null },
            _ => new() { GradientClipVal = -1 },
        };
        var error = Assert.ThrowsAny<ArgumentException>(() => new Trainer(options));
        Assert.Contains(message, error.Message);
    }

    [Fact]
    public void SeedEverything_MakesRunsRepeatable()
    {
        using var root = new TempDirectory();
        double Run()
        {
            LightningSeed.SeedEverything(123);
            var model = new BoringModel();
            var trainer = new Trainer(Quiet(root) with { MaxEpochs = 1 });
            trainer.Fit(model, RandomBatches.Create(4, seed: LightningSeed.Random.Next()));
            return trainer.LastTrainLoss!.Value;
        }
        Assert.Equal(Run(), Run());
    }

    private sealed class StopAtOnce : Callback
    {
        public override void OnTrainEpochEnd(Trainer trainer, LightningModule module) => trainer.ShouldStop = true;
    }

    internal sealed class CountingModel : BoringModel
    {
        public int TrainSteps, ValSteps, ValRuns;
        public List<Tensor> ValBatches { get; } = [];
        public override Tensor? TrainingStep(Tensor batch, int batchIdx) { TrainSteps++; return base.TrainingStep(batch, batchIdx); }
        public override void ValidationStep(Tensor batch, int batchIdx)
        {
            ValSteps++;
            ValBatches.Add(batch);
            Log("val_loss", nn.functional.mse_loss(forward(batch), ones(batch.shape[0], 2)));
        }
        public override void OnValidationEnd() { if (Trainer is { SanityChecking: false }) ValRuns++; }
    }

    private sealed class CountingDataModule : LightningDataModule<Tensor>
    {
        public int TrainLoaders;
        public List<string> Calls { get; } = [];
        public override void PrepareData() => Calls.Add("prepare");
        public override void Setup(Stage stage) => Calls.Add($"setup:{stage}");
        public override void Teardown(Stage stage) => Calls.Add($"teardown:{stage}");
        public override IEnumerable<Tensor> TrainDataLoader() { TrainLoaders++; return RandomBatches.Create(2); }
    }

    private sealed class GradientProbe(double lr) : BoringModel(lr)
    {
        public List<(double Norm, double Largest)> Seen { get; } = [];
        public override void OptimizerStep(int epoch, int batchIdx, LightningOptimizer optimizer, Func<Tensor?> closure)
        {
            // The step runs the closure (step, backward), clipping and the update; the gradients it applied are still there.
            optimizer.Step(closure);
            var grads = parameters().Select(p => p.grad!).ToList();
            Seen.Add((cat(grads.Select(g => g.flatten()).ToArray()).norm().ToDouble(), grads.Max(g => g.abs().max().ToDouble())));
        }
    }

    private sealed class DeterminismProbe : BoringModel
    {
        public bool SeenOn { get; private set; }
        public override Tensor? TrainingStep(Tensor batch, int batchIdx) { SeenOn = LibTorch.DeterministicAlgorithmsEnabled; return base.TrainingStep(batch, batchIdx); }
    }

    private sealed class NaNModel : BoringModel
    {
        // sqrt of negative numbers: NaN values, and a NaN gradient in SqrtBackward.
        public override Tensor? TrainingStep(Tensor batch, int batchIdx) => (forward(batch) - 100).sqrt().sum();
    }
}
