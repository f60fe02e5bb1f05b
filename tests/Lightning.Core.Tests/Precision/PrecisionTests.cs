using Lightning.Data;
using Lightning.Precision;
using Lightning.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Precision;

public class PrecisionTests
{
    private static TrainerOptions Quiet(TempDirectory root) => TestTrainer.Quiet(root) with { NumSanityValSteps = 0, Accelerator = "cpu" };

    [Fact]
    public void Bf16Mixed_LinearOutputIsBFloat16_WhileWeightsStayFloat32()
    {
        using var root = new TempDirectory();
        var model = new ProbeModel();
        new Trainer(Quiet(root) with { MaxEpochs = 1, Precision = "bf16-mixed" }).Fit(model, RandomBatches.Create(2));

        Assert.All(model.OutputDtypes, d => Assert.Equal(ScalarType.BFloat16, d));
        Assert.All(model.parameters(), p => Assert.Equal(ScalarType.Float32, p.dtype));
        Assert.All(model.AutocastDuringBackward, on => Assert.False(on));
        Assert.False(Autocast.IsEnabled(DeviceType.CPU));
    }

    [Fact]
    public void Bf16Mixed_AutocastIsOffAgainAfterAnException()
    {
        using var root = new TempDirectory();
        var trainer = new Trainer(Quiet(root) with { MaxEpochs = 1, Precision = "bf16" });
        Assert.Throws<InvalidOperationException>(() => trainer.Fit(new ThrowingModel(), RandomBatches.Create(2)));
        Assert.False(Autocast.IsEnabled(DeviceType.CPU));
        Assert.Equal(ScalarType.BFloat16, Autocast.Dtype(DeviceType.CPU)); // libtorch's CPU default, restored
    }

    [Fact]
    public void Autocast_NestedScopes_RestoreTheOuterState()
    {
        using (Autocast.Enable(DeviceType.CPU, ScalarType.BFloat16))
        {
            using (Autocast.Enable(DeviceType.CPU, ScalarType.Float16))
                Assert.Equal(ScalarType.Float16, Autocast.Dtype(DeviceType.CPU));
            Assert.True(Autocast.IsEnabled(DeviceType.CPU));
            Assert.Equal(ScalarType.BFloat16, Autocast.Dtype(DeviceType.CPU));
        }
        Assert.False(Autocast.IsEnabled(DeviceType.CPU));
    }

    [Fact]
    public void SixteenMixed_OnTheCpu_RunsAsBf16Mixed()
    {
        var trainer = new Trainer(new TrainerOptions { Accelerator = "cpu", Precision = "16-mixed" });
        Assert.Equal("bf16-mixed", trainer.Precision);
    }

    [Theory]
    [InlineData("64-true", ScalarType.Float64)]
    [InlineData("64", ScalarType.Float64)]
    [InlineData("bf16-true", ScalarType.BFloat16)]
    [InlineData("16-true", ScalarType.Float16)]
    public void TruePrecision_CastsWeightsAndInputs(string precision, ScalarType dtype)
    {
        using var root = new TempDirectory();
        var model = new ProbeModel();
        new Trainer(Quiet(root) with { MaxEpochs = 1, Precision = precision }).Fit(model, RandomBatches.Create(2));
        Assert.All(model.parameters(), p => Assert.Equal(dtype, p.dtype));
        Assert.All(model.InputDtypes, d => Assert.Equal(dtype, d));
    }

    [Fact]
    public void GradScaler_InfGradient_SkipsTheStepAndHalvesTheScale()
    {
        var layer = nn.Linear(3, 1);
        var optimizer = optim.SGD(layer.parameters(), 0.1);
        var scaler = new GradScaler();
        var before = layer.weight!.detach().clone();

        scaler.ScaleLoss(layer.forward(ones(2, 3)).sum()).backward();
        layer.weight!.grad![0, 0] = float.PositiveInfinity;
        var stepped = scaler.Step(optimizer);
        scaler.Update();

        Assert.False(stepped);
        Assert.True(layer.weight.equal(before).all().item<bool>());
        Assert.Equal(32768.0, scaler.Scale);
    }

    [Fact]
    public void GradScaler_CleanSteps_UnscaleGradientsAndGrowTheScaleAfterTheInterval()
    {
        var layer = nn.Linear(3, 1);
        var optimizer = optim.SGD(layer.parameters(), 0.1);
        var scaler = new GradScaler(initScale: 8, growthInterval: 2);
        for (int i = 0; i < 2; i++)
        {
            optimizer.zero_grad();
            scaler.ScaleLoss(layer.forward(ones(2, 3)).sum()).backward();
            scaler.Unscale(optimizer);
            // d(sum(w·x + b))/dw = sum over the batch of x = 2 for every weight: the scale must be gone.
            Assert.True(layer.weight!.grad!.allclose(full(1, 3, 2f)));
            Assert.True(scaler.Step(optimizer));
            scaler.Update();
        }
        Assert.Equal(16.0, scaler.Scale);
        var state = scaler.SaveState();
        var restored = new GradScaler();
        restored.LoadState(state);
        Assert.Equal(16.0, restored.Scale);
    }

    [Fact]
    public void Bf16Mixed_QuickstartAutoencoder_EndsWithin2PercentOfFloat32()
    {
        using var root = new TempDirectory();
        using var dataset = new FashionMnist();
        double Train(string precision)
        {
            manual_seed(0);
            var model = new AutoEncoder();
            var loader = utils.data.DataLoader(dataset, 64, new EpochShuffler(dataset.Count, seed: 1), disposeDataset: false);
            var trainer = new Trainer(Quiet(root) with { MaxEpochs = 1, LimitTrainBatches = 150, Precision = precision });
            trainer.Fit(model, loader);
            return model.RecentLoss;
        }

        var full = Train("32-true");
        var mixed = Train("bf16-mixed");
        Assert.True(Math.Abs(mixed - full) / full < 0.02, $"bf16-mixed {mixed} vs 32-true {full}");
    }

    [RequiresTheory(Component.NoCuda)]
    [InlineData("cuda")]
    [InlineData("gpu")]
    public void CudaWithoutCuda_SaysWhatIsAvailable(string accelerator)
    {
        var error = Assert.Throws<InvalidOperationException>(() => new Trainer(new TrainerOptions { Accelerator = accelerator }));
        Assert.Contains("no CUDA device is available (CUDA devices: 0; available: cpu)", error.Message);
    }

    [Theory]
    [InlineData("32", "32-true", typeof(TruePrecision))]
    [InlineData("64", "64-true", typeof(TruePrecision))]
    [InlineData("16", "bf16-mixed", typeof(MixedPrecision))]   // "16-mixed", which the CPU runs as bf16
    [InlineData("bf16", "bf16-mixed", typeof(MixedPrecision))]
    public void PrecisionAlias_ResolvesToLightningsFullName(string alias, string resolved, Type plugin)
    {
        var trainer = new Trainer(new TrainerOptions { Accelerator = "cpu", Precision = alias });

        Assert.Equal(resolved, trainer.Precision);
        Assert.IsType(plugin, trainer.Strategy.Precision);
    }

    [Fact]
    public void UnknownPrecision_ListsTheAllowedValues()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new Trainer(new TrainerOptions { Precision = "8-bit" }));
        Assert.Contains("Precision = \"8-bit\" is not allowed: use one of \"32-true\" (32), \"64-true\" (64)", error.Message);
    }

    [Fact]
    public void AutoAccelerator_OnAMachineWithoutCuda_PicksTheCpu()
    {
        var trainer = new Trainer(new TrainerOptions());
        Assert.Equal(cuda.is_available() ? DeviceType.CUDA : DeviceType.CPU, trainer.RootDevice.type);
    }

    [Fact]
    public void TruePrecision_CastsLayersTheModuleBuildsInSetup()
    {
        // As in Lightning, the strategy places and casts the module after the setup hooks, so layers built there train too.
        using var root = new TempDirectory();
        var model = new LayerInSetupModel();
        new Trainer(Quiet(root) with { MaxEpochs = 1, Precision = "64-true" }).Fit(model, RandomBatches.Create(2));
        Assert.NotEmpty(model.parameters());
        Assert.All(model.parameters(), p => Assert.Equal(ScalarType.Float64, p.dtype));
    }

    private sealed class LayerInSetupModel() : LightningModule<Tensor>(nameof(LayerInSetupModel))
    {
        private nn.Module<Tensor, Tensor>? _layer;

        public override void Setup(Stage stage)
        {
            if (_layer is not null) return;
            _layer = nn.Linear(32, 2);
            register_module("layer", _layer);
        }

        public override Tensor? TrainingStep(Tensor batch, int batchIdx) => _layer!.forward(batch).pow(2).mean();

        public override OptimizerConfiguration ConfigureOptimizers() => optim.SGD(parameters(), 0.1);
    }

    private class ProbeModel : BoringModel
    {
        public List<ScalarType> OutputDtypes { get; } = [];
        public List<ScalarType> InputDtypes { get; } = [];
        public List<bool> AutocastDuringBackward { get; } = [];

        public override Tensor? TrainingStep(Tensor batch, int batchIdx)
        {
            InputDtypes.Add(batch.dtype);
            var output = forward(batch);
            OutputDtypes.Add(output.dtype);
            return nn.functional.mse_loss(output, ones_like(output));
        }

        public override void Backward(Tensor loss)
        {
            AutocastDuringBackward.Add(Autocast.IsEnabled(DeviceType.CPU));
            base.Backward(loss);
        }
    }

    private sealed class ThrowingModel : BoringModel
    {
        public override Tensor? TrainingStep(Tensor batch, int batchIdx) =>
            Autocast.IsEnabled(DeviceType.CPU) ? throw new InvalidOperationException("inside autocast") : null;
    }

    private sealed class AutoEncoder : LightningModule<IList<Tensor>>
    {
        private readonly TorchSharp.Modules.Sequential encoder = nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 3));
        private readonly TorchSharp.Modules.Sequential decoder = nn.Sequential(nn.Linear(3, 64), nn.ReLU(), nn.Linear(64, 784));
        private readonly Queue<double> _recent = new();

        public AutoEncoder() : base(nameof(AutoEncoder)) => RegisterComponents();

        /// <summary>Mean of the last 20 step losses: one step's loss is too noisy to compare precisions.</summary>
        public double RecentLoss => _recent.Average();

        public override Tensor? TrainingStep(IList<Tensor> batch, int batchIdx)
        {
            var x = batch[0].view(batch[0].size(0), -1);
            var loss = nn.functional.mse_loss(decoder.forward(encoder.forward(x)).to(ScalarType.Float32), x);
            _recent.Enqueue(loss.ToDouble());
            if (_recent.Count > 20) _recent.Dequeue();
            return loss;
        }

        public override OptimizerConfiguration ConfigureOptimizers() => optim.Adam(parameters(), 1e-3);
    }
}
