using Lightning.Onnx;
using Lightning.Onnx.Proto;
using Lightning.Testing;
using Microsoft.ML.OnnxRuntime;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Onnx;

/// <summary>Whole models exported and compared with ONNX Runtime, and what the written model file holds.</summary>
public class OnnxModelTests
{
    [Fact]
    public void ToOnnx_QuickStartAutoEncoder_MatchesBothOutputs()
    {
        manual_seed(4);
        var model = new QuickStartAutoEncoder();
        OnnxParity.AssertMatches(model, b => [rand(b, 28 * 28)], s => model.Forward(s[0]),
            new OnnxExportOptions { OutputNames = ["embedding", "reconstruction"] });
    }

    [Fact]
    public void ToOnnx_FashionMnistCnnWithBatchNormAndDropout_Matches()
    {
        manual_seed(5);
        var cnn = FashionMnistCnn.Create();
        // Train-mode passes move the BatchNorm statistics, so eval mode must use the running ones.
        using (no_grad())
            for (int i = 0; i < 3; i++) cnn.forward(rand(16, 1, 28, 28) * 2);
        OnnxParity.AssertMatches(cnn, b => rand(b, 1, 28, 28));
    }

    [Fact]
    public void ToOnnx_LstmClassifier_Matches()
    {
        manual_seed(6);
        OnnxParity.AssertMatches(new LstmClassifier(), b => randn(b, 9, 8));
    }

    [Fact]
    public void ToOnnx_ModuleListResidualsConcatAndReshape_Matches()
    {
        manual_seed(7);
        OnnxParity.AssertMatches(new ResidualStack(), b => randn(b, 6));
    }

    [Fact]
    public void ToOnnx_ModuleLoadedFromCheckpoint_MatchesAndCarriesHyperparameters()
    {
        manual_seed(8);
        using var root = new TempDirectory();
        var trainer = new Trainer(new TrainerOptions { MaxEpochs = 1, DefaultRootDir = root.Path, EnableProgressBar = false });
        var batches = Enumerable.Range(0, 3).Select(_ => (IList<Tensor>)[rand(4, 28 * 28), zeros(4)]).ToList();
        trainer.Fit(new QuickStartAutoEncoder(hidden: 16, lr: 0.01), batches);
        var loaded = LightningModule.LoadFromCheckpoint<QuickStartAutoEncoder>(trainer.CheckpointCallback!.BestModelPath!);

        OnnxParity.AssertMatches(loaded, b => [rand(b, 28 * 28)], s => loaded.Forward(s[0]));
        var path = root.Combine("loaded.onnx");
        loaded.ToOnnx(path, rand(2, 28 * 28));
        using var session = new InferenceSession(path);
        Assert.Equal("16", session.ModelMetadata.CustomMetadataMap["hidden"]);
        Assert.Equal("0.01", session.ModelMetadata.CustomMetadataMap["lr"]);
    }

    [Fact]
    public void ToOnnx_Defaults_WriteOpset17Ir8WeightsAsInitializersAndDynamicBatch()
    {
        using var directory = new TempDirectory();
        var path = directory.Combine("cnn.onnx");
        FashionMnistCnn.Create().ToOnnx(path, rand(2, 1, 28, 28), new OnnxExportOptions { Metadata = new Dictionary<string, string> { ["task"] = "fashion" } });

        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        Assert.Equal(8, model.IrVersion);
        Assert.Equal(17, Assert.Single(model.OpsetImport).Version);
        Assert.Equal("Lightning.NET", model.ProducerName);
        Assert.False(string.IsNullOrEmpty(model.ProducerVersion));
        Assert.Equal("fashion", Assert.Single(model.MetadataProps).Value);
        var input = Assert.Single(model.Graph.Input);
        Assert.Equal("input", input.Name);
        Assert.Equal(["batch", "", "", ""], input.Type.TensorType.Shape.Dim.Select(d => d.DimParam));
        Assert.Equal([0, 1, 28, 28], input.Type.TensorType.Shape.Dim.Select(d => d.DimValue));
        var output = Assert.Single(model.Graph.Output);
        Assert.Equal("output", output.Name);
        Assert.Equal("batch", output.Type.TensorType.Shape.Dim[0].DimParam);
        Assert.Equal(10, output.Type.TensorType.Shape.Dim[1].DimValue);
        Assert.Contains(model.Graph.Initializer, i => i.Name == "0.weight");
        Assert.Contains(model.Graph.Initializer, i => i.Name == "1.running_mean");
        Assert.DoesNotContain(model.Graph.Node, n => n.OpType == "Dropout");
    }

    [Fact]
    public void ToOnnx_EmptyDynamicAxes_FixesEverySize()
    {
        using var directory = new TempDirectory();
        var path = directory.Combine("static.onnx");
        nn.Sequential(nn.Linear(4, 3)).ToOnnx(path, randn(2, 4),
            new OnnxExportOptions { DynamicAxes = new Dictionary<string, IReadOnlyDictionary<int, string>>() });

        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        Assert.Equal([2, 4], model.Graph.Input[0].Type.TensorType.Shape.Dim.Select(d => d.DimValue));
        Assert.Equal([2, 3], model.Graph.Output[0].Type.TensorType.Shape.Dim.Select(d => d.DimValue));
    }

    public static TheoryData<int, long> OpsetsAndIrVersions => new()
    {
        { 13, 7 }, { 14, 7 }, { 15, 8 }, { 16, 8 }, { 17, 8 }, { 18, 8 }, { 19, 9 }, { 20, 9 }, { 21, 10 },
    };

    [Theory]
    [MemberData(nameof(OpsetsAndIrVersions))]
    public void ToOnnx_EachOpset_WritesItsIrVersionAndRuns(int opset, long irVersion)
    {
        manual_seed(9);
        var module = nn.Sequential(nn.Linear(6, 8), nn.LayerNorm(8), nn.GELU(), nn.Linear(8, 3), nn.Softmax(-1));
        OnnxParity.AssertMatches(module, b => randn(b, 6), new OnnxExportOptions { Opset = opset });

        using var directory = new TempDirectory();
        module.ToOnnx(directory.Combine("m.onnx"), randn(2, 6), new OnnxExportOptions { Opset = opset });
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(directory.Combine("m.onnx")));
        Assert.Equal(irVersion, model.IrVersion);
        Assert.Equal(opset, model.OpsetImport[0].Version);
    }

    [Fact]
    public void ToOnnx_RestoresEachModulesTrainingFlag()
    {
        var cnn = FashionMnistCnn.Create();
        cnn.train();
        var dropout = cnn.named_children().Single(c => c.name == "9").module;
        dropout.eval();
        using var directory = new TempDirectory();

        cnn.ToOnnx(directory.Combine("cnn.onnx"), rand(2, 1, 28, 28));

        Assert.True(cnn.training);
        Assert.False(dropout.training);
        Assert.True(cnn.named_children().Single(c => c.name == "1").module.training);
    }
}
