using Lightning.Loggers;
using Lightning.Precision;
using Lightning.Testing;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lightning.Core.Tests;

public class FabricTests
{
    [Fact]
    public void HandWrittenLoop_MatchesTheTrainerStepForStep()
    {
        using var root = new TempDirectory();
        var batches = RandomBatches.Create(6, seed: 4);

        manual_seed(3);
        var trained = new BoringModel();
        new Trainer(TestTrainer.Quiet(root) with { MaxEpochs = 1 }).Fit(trained, batches);

        manual_seed(3);
        var model = new BoringModel();
        var fabric = new Lightning.Fabric(new FabricOptions { Accelerator = "cpu" });
        fabric.Setup(model);
        var optimizer = fabric.SetupOptimizer(optim.SGD(model.parameters(), model.Lr));
        foreach (var batch in fabric.SetupDataLoader(batches))
        {
            using var scope = NewDisposeScope();
            Tensor loss;
            using (fabric.Autocast())
            {
                var output = model.forward(batch);
                loss = nn.functional.mse_loss(output, ones_like(output));
            }
            optimizer.zero_grad();
            fabric.Backward(loss);
            fabric.Step(optimizer);
        }

        foreach (var (name, weight) in trained.state_dict())
            Assert.Equal(weight.data<float>().ToArray(), model.state_dict()[name].data<float>().ToArray());
    }

    [Fact]
    public void Bf16Mixed_AutocastScopeTurnsLinearOutputsToBFloat16()
    {
        var fabric = new Lightning.Fabric(new FabricOptions { Accelerator = "cpu", Precision = "bf16-mixed" });
        var layer = fabric.Setup(nn.Linear(4, 2));
        using (fabric.Autocast()) Assert.Equal(ScalarType.BFloat16, layer.forward(randn(3, 4)).dtype);
        Assert.Equal(ScalarType.Float32, layer.forward(randn(3, 4)).dtype);
        Assert.Equal(ScalarType.Float32, layer.weight!.dtype);
    }

    [Fact]
    public void TruePrecision_CastsTheModuleAndTheBatches()
    {
        var fabric = new Lightning.Fabric(new FabricOptions { Accelerator = "cpu", Precision = "64-true" });
        var layer = fabric.Setup(nn.Linear(4, 2));
        IList<Tensor> batch = fabric.ToDevice<IList<Tensor>>([randn(2, 4), tensor(new long[] { 1, 0 })]);
        Assert.Equal(ScalarType.Float64, layer.weight!.dtype);
        Assert.Equal(ScalarType.Float64, batch[0].dtype);
        Assert.Equal(ScalarType.Int64, batch[1].dtype);
    }

    [Fact]
    public void SaveAndLoad_RestoreModulesAndOptimizersInPlace_AndReturnTheRest()
    {
        using var root = new TempDirectory();
        var fabric = new Lightning.Fabric(new FabricOptions { Accelerator = "cpu" });
        var model = fabric.Setup(nn.Linear(3, 2));
        var optimizer = optim.Adam(model.parameters(), 0.1);
        model.forward(ones(1, 3)).sum().backward();
        optimizer.step();
        var path = root.Combine("fabric.ckpt");
        fabric.Save(path, new Dictionary<string, object> { ["model"] = model, ["optimizer"] = optimizer, ["iteration"] = 7 });

        var restoredModel = nn.Linear(3, 2);
        var restoredOptimizer = optim.Adam(restoredModel.parameters(), 0.1);
        var rest = fabric.Load(path, new Dictionary<string, object> { ["model"] = restoredModel, ["optimizer"] = restoredOptimizer });

        Assert.Equal(7, (int)rest["iteration"]!);
        Assert.Equal(model.weight!.data<float>().ToArray(), restoredModel.weight!.data<float>().ToArray());
        Assert.Equal(StateBytes((OptimizerHelper)optimizer), StateBytes((OptimizerHelper)restoredOptimizer));
        Assert.Equal(new[] { path }, Directory.GetFiles(root.Path));
    }

    [Fact]
    public void ClipGradients_ByNorm_ReturnsTheNormAndClips()
    {
        var fabric = new Lightning.Fabric(new FabricOptions { Accelerator = "cpu" });
        var layer = fabric.Setup(nn.Linear(3, 1));
        var optimizer = optim.SGD(layer.parameters(), 0.1);
        (layer.forward(full(4, 3, 10f)).sum() * 100).backward();

        var norm = fabric.ClipGradients(optimizer, maxNorm: 1.0);

        Assert.True(norm > 1.0);
        var clipped = cat(layer.parameters().Select(p => p.grad!.flatten()).ToArray()).norm().ToDouble();
        Assert.Equal(1.0, clipped, 4);
        Assert.Throws<ArgumentException>(() => fabric.ClipGradients(optimizer));
    }

    [Fact]
    public void CollectivesAndLogging_WorkInOneProcess()
    {
        using var root = new TempDirectory();
        var csv = new CsvLogger(root.Path);
        var fabric = new Lightning.Fabric(new FabricOptions { Accelerator = "cpu", Loggers = [csv] });

        var reduced = fabric.AllReduce(tensor(new[] { 1f, 3f }));
        fabric.Barrier();
        fabric.Log("loss", 0.25, step: 3);

        Assert.Equal(new[] { 1f, 3f }, reduced.data<float>().ToArray());
        Assert.Equal((0, 1, true), (fabric.GlobalRank, fabric.WorldSize, fabric.IsGlobalZero));
        Assert.Equal(new[] { "loss,step", "0.25,3" }, File.ReadAllLines(Path.Combine(csv.LogDir, "metrics.csv")));
        Assert.Throws<ArgumentOutOfRangeException>(() => fabric.AllReduce(reduced, "median"));
    }

    private static byte[] StateBytes(OptimizerHelper optimizer)
    {
        using var stream = new MemoryStream();
        using (var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true)) optimizer.save_state_dict(writer);
        return stream.ToArray();
    }
}
