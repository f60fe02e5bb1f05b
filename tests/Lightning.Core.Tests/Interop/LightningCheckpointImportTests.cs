using Lightning.Checkpoints;
using Lightning.Testing;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Interop;

/// <summary>A PyTorch Lightning <c>.ckpt</c> (made by scripts/make-interop-fixtures.py) loads and resumes in Lightning.NET.</summary>
public class LightningCheckpointImportTests
{
    /// <summary>The fixture's LightningModule: attribute <c>encoder</c>, hyperparameters hidden, lr and name.</summary>
    public class LitRegressor : LightningModule<Tensor>
    {
        private readonly Sequential encoder;

        public LitRegressor(long hidden = 3, double lr = 0.01, string name = "regressor") : base(nameof(LitRegressor))
        {
            encoder = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 2));
            RegisterComponents();
            SaveHyperparameters(new { hidden, lr, name });
            Lr = lr;
        }

        public double Lr { get; }

        /// <summary>Adam's state for each parameter as the fit started (after the checkpoint was restored).</summary>
        public List<(long Step, Tensor ExpAvg, Tensor ExpAvgSq)> StateAtStart { get; } = [];

        public double LrAtStart { get; private set; }

        public override Tensor? TrainingStep(Tensor batch, int batchIdx) =>
            nn.functional.mse_loss(encoder.forward(batch[.., ..4]), batch[.., 4..]);

        public override OptimizerConfiguration ConfigureOptimizers() => optim.Adam(parameters(), Lr);

        public override void OnTrainStart()
        {
            var optimizer = (OptimizerHelper)Trainer!.Optimizers[0];
            var state = optimizer.state_dict();
            LrAtStart = state.Options[0].LearningRate!.Value;
            foreach (var s in state.State.OfType<Adam.State>())
                StateAtStart.Add((s.step, s.exp_avg.clone().DetachFromDisposeScope(), s.exp_avg_sq.clone().DetachFromDisposeScope()));
        }
    }

    private sealed class WithSgd : LitRegressor
    {
        public WithSgd() : base() { }

        public override OptimizerConfiguration ConfigureOptimizers() => optim.SGD(parameters(), 0.1);
    }

    private static readonly string Ckpt = Fixtures.Path("lightning.ckpt");
    private static readonly System.Text.Json.JsonElement Expected = Fixtures.Expected.GetProperty("lightning");

    [Fact]
    public void CheckpointLoad_ReadsEpochGlobalStepAndHyperparametersOfALightningCkpt()
    {
        var checkpoint = Checkpoint.Load(Ckpt);

        Assert.True(checkpoint.IsPyTorchLightning);
        Assert.Equal(Expected.GetProperty("epoch").GetInt32(), checkpoint.Epoch);
        Assert.Equal(Expected.GetProperty("global_step").GetInt64(), checkpoint.GlobalStep);
        Assert.Equal(3, checkpoint.Hyperparameters["hidden"].GetInt64());
        Assert.Equal("regressor", checkpoint.Hyperparameters["name"].GetString());
        Assert.Equal([0.9, 0.999], checkpoint.Hyperparameters["betas"].EnumerateArray().Select(b => b.GetDouble()));
        Assert.Contains(checkpoint.SkippedOnImport, s => s.StartsWith("callback state", StringComparison.Ordinal));
        Assert.Contains(checkpoint.SkippedOnImport, s => s.StartsWith("random generator state", StringComparison.Ordinal));
    }

    [Fact]
    public void LoadFromCheckpoint_LightningCkpt_RebuildsTheModuleWithTheWeightsPyTorchWrote()
    {
        var model = LightningModule.LoadFromCheckpoint<LitRegressor>(Ckpt);

        Assert.Equal(0.01, model.Lr);
        Assert.Equal(0.01, (double)model.Hparams["lr"]!);
        foreach (var entry in Expected.GetProperty("state_dict").EnumerateObject())
            Assert.Equal(Fixtures.Values(entry.Value), model.state_dict()[entry.Name].to(float64).data<double>().ToArray());
    }

    [Fact]
    public void Fit_FromALightningCkpt_ContinuesEpochGlobalStepAndAdamState()
    {
        using var root = new TempDirectory();
        var stepsPerEpoch = Expected.GetProperty("steps_per_epoch").GetInt32();
        var globalStep = Expected.GetProperty("global_step").GetInt64();
        var startEpoch = Expected.GetProperty("epoch").GetInt32() + 1;
        var batches = RandomBatches.Create(stepsPerEpoch, batchSize: 4, features: 6);
        var model = new LitRegressor();
        var trainer = new Trainer(TestTrainer.Quiet(root) with { MaxEpochs = startEpoch + 1, NumSanityValSteps = 0 });

        trainer.Fit(model, batches, ckptPath: Ckpt);

        Assert.Equal(globalStep + stepsPerEpoch, trainer.GlobalStep);
        Assert.Equal(startEpoch + 1, trainer.CurrentEpoch);
        Assert.Equal(Expected.GetProperty("lr").GetDouble(), model.LrAtStart);
        var steps = Fixtures.Values(Expected.GetProperty("adam_step"));
        var expAvg = Expected.GetProperty("exp_avg").EnumerateArray().Select(Fixtures.Values).ToList();
        var expAvgSq = Expected.GetProperty("exp_avg_sq").EnumerateArray().Select(Fixtures.Values).ToList();
        Assert.Equal(steps.Length, model.StateAtStart.Count);
        for (int i = 0; i < steps.Length; i++)
        {
            Assert.Equal((long)steps[i], model.StateAtStart[i].Step);
            Assert.Equal(expAvg[i], model.StateAtStart[i].ExpAvg.to(float64).data<double>().ToArray());
            Assert.Equal(expAvgSq[i], model.StateAtStart[i].ExpAvgSq.to(float64).data<double>().ToArray());
        }
    }

    [Fact]
    public void Fit_FromALightningCkpt_WithAnotherOptimizer_SaysItsStateIsSkipped()
    {
        using var root = new TempDirectory();
        var trainer = new Trainer(TestTrainer.Quiet(root) with { MaxEpochs = Expected.GetProperty("epoch").GetInt32() + 2, NumSanityValSteps = 0 });
        var error = new StringWriter();
        var original = Console.Error;
        Console.SetError(error);
        try
        {
            trainer.Fit(new WithSgd(), RandomBatches.Create(2, batchSize: 4, features: 6), ckptPath: Ckpt);
        }
        finally
        {
            Console.SetError(original);
        }

        Assert.Contains("not restored: optimizer 0 (SGD) starts fresh: the checkpoint's optimizer is Adam or AdamW (by its state's keys) and the module's is SGD",
            error.ToString());
    }

    [PyTorchFact]
    public void LoadFromCheckpoint_OfACompiledSubmodule_DropsOrigModFromItsKeys()
    {
        using var root = new TempDirectory();
        var path = root.Combine("compiled.ckpt");
        // "self.encoder = torch.compile(self.encoder)" in a LightningModule saves the encoder's weights under "encoder._orig_mod.".
        const string script = """
            import json, sys, torch
            torch.manual_seed(1)
            encoder = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
            state = {"encoder._orig_mod." + k: v for k, v in encoder.state_dict().items()}
            torch.save({"state_dict": state, "epoch": 0, "global_step": 5}, sys.argv[1])
            print(json.dumps({"encoder." + k: v.to(torch.float64).reshape(-1).tolist() for k, v in encoder.state_dict().items()}))
            """;
        var written = System.Text.Json.JsonDocument.Parse(PyTorchFactAttribute.Run(script, path)).RootElement;

        var model = LightningModule.LoadFromCheckpoint<LitRegressor>(path);

        Assert.Equal(written.EnumerateObject().Select(e => e.Name).Order(), model.state_dict().Keys.Order());
        foreach (var entry in written.EnumerateObject())
            Assert.Equal(Fixtures.Values(entry.Value), model.state_dict()[entry.Name].to(float64).data<double>().ToArray());
    }

    [Fact]
    public void CheckpointLoad_RefusesFilesThatAreNeitherFormat()
    {
        using var root = new TempDirectory();
        var text = root.Combine("notes.ckpt");
        File.WriteAllText(text, "not a checkpoint");

        Assert.Contains("it is not a zip file; a checkpoint is a Lightning.NET checkpoint (a zip with checkpoint.json) or a PyTorch Lightning one",
            Assert.Throws<InvalidDataException>(() => Checkpoint.Load(text)).Message);
        Assert.Contains("is a PyTorch file but not a Lightning checkpoint: it has no 'state_dict' dict",
            Assert.Throws<InvalidDataException>(() => Checkpoint.Load(Fixtures.Path("mlp.pt"))).Message);
    }
}
