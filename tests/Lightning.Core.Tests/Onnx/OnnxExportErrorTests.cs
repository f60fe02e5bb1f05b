using Lightning.Onnx;
using Lightning.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Onnx;

/// <summary>Requests the exporter refuses, each with a message that says what to change, and nothing written.</summary>
public class OnnxExportErrorTests
{
    [Fact]
    public void ToOnnx_ConvNetWithUnbatchedSample_NamesTheLayerAndTheExpectedRank()
    {
        using var directory = new TempDirectory();
        var error = Assert.Throws<ArgumentException>(() =>
            FashionMnistCnn.Create().ToOnnx(directory.Combine("cnn.onnx"), rand(1, 28, 28)));

        Assert.Contains("Conv2d '0' expects a 4-D input [batch, channels, height, width]", error.Message);
        Assert.Contains("rank 3 (shape [1, 28, 28])", error.Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(directory.Path));
    }

    [Fact]
    public void ToOnnx_SampleOfTheWrongShape_NamesTheFailingLayer()
    {
        var encoder = nn.Sequential(nn.Linear(28 * 28, 64), nn.ReLU(), nn.Linear(64, 3));
        using var directory = new TempDirectory();

        var error = Assert.Throws<ArgumentException>(() => encoder.ToOnnx(directory.Combine("e.onnx"), rand(4, 28, 28)));

        Assert.Contains("'0' (Linear) fails on its input of shape [4, 28, 28]", error.Message);
        Assert.Equal("inputSample", error.ParamName);
    }

    [Theory]
    [InlineData(12)]
    [InlineData(22)]
    public void ToOnnx_UnsupportedOpset_IsRefusedWithTheRange(int opset)
    {
        using var directory = new TempDirectory();
        var error = Assert.Throws<ArgumentOutOfRangeException>(() =>
            nn.Linear(2, 2).ToOnnx(directory.Combine("m.onnx"), randn(1, 2), new OnnxExportOptions { Opset = opset }));

        Assert.Contains($"Opset = {opset} is not allowed: the exporter writes opsets 13 to 21", error.Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(directory.Path));
    }

    [Fact]
    public void ToOnnx_IntoAMissingFolder_FailsBeforeWritingAnything()
    {
        using var directory = new TempDirectory();
        var path = directory.Combine("missing", "m.onnx");

        var error = Assert.Throws<DirectoryNotFoundException>(() => nn.Linear(2, 2).ToOnnx(path, randn(1, 2)));

        Assert.Contains("does not exist", error.Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(directory.Path));
    }

    [Fact]
    public void ToOnnx_OntoADirectory_FailsAndLeavesNoFile()
    {
        using var directory = new TempDirectory();
        var path = directory.Combine("model.onnx");
        Directory.CreateDirectory(path);

        var error = Assert.Throws<IOException>(() => nn.Linear(2, 2).ToOnnx(path, randn(1, 2)));

        Assert.Contains("it is a directory", error.Message);
        Assert.Equal([path], Directory.EnumerateFileSystemEntries(directory.Path));
        Assert.Empty(Directory.EnumerateFileSystemEntries(path));
    }

    [Fact]
    public void ToOnnx_OverAnExistingFile_ReplacesItWholeAndLeavesNoTemporaryFile()
    {
        using var directory = new TempDirectory();
        var path = directory.Combine("model.onnx");
        File.WriteAllText(path, "old");

        nn.Linear(2, 2).ToOnnx(path, randn(1, 2));

        Assert.NotEqual("old", File.ReadAllText(path));
        Assert.Equal([path], Directory.EnumerateFileSystemEntries(directory.Path));
    }

    [Fact]
    public void ToOnnx_ModuleWithoutConverter_NamesItsPathTypeAndTheFix()
    {
        var model = new Wrapper(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), new Doubler()));
        using var directory = new TempDirectory();

        var error = Assert.Throws<NotSupportedException>(() => model.ToOnnx(directory.Combine("m.onnx"), randn(2, 4)));

        Assert.Contains("Cannot export 'encoder.2' (Doubler) to ONNX", error.Message);
        Assert.Contains("implementing Lightning.Onnx.IOnnxExportable on Doubler", error.Message);
        Assert.Contains("OnnxConverters.Register<Doubler>", error.Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(directory.Path));
    }

    [Fact]
    public void ToOnnx_LightningModuleWithoutGraph_SaysToImplementIOnnxExportable()
    {
        using var directory = new TempDirectory();
        var error = Assert.Throws<NotSupportedException>(() => new BoringModel().ToOnnx(directory.Combine("m.onnx"), randn(2, 32)));

        Assert.Contains("BoringModel is a LightningModule", error.Message);
        Assert.Contains("implement IOnnxExportable", error.Message);
    }

    [Fact]
    public void ToOnnx_RegisteredConverter_MakesAModuleExportable()
    {
        Assert.False(OnnxConverters.IsRegistered(typeof(Halver)));
        OnnxConverters.Register<Halver>((_, graph, inputs) => [graph.Mul(inputs[0], graph.Scalar(0.5, inputs[0]))]);
        Assert.True(OnnxConverters.IsRegistered(typeof(Halver)));
        OnnxParity.AssertMatches(nn.Sequential(nn.Linear(4, 4), new Halver()), b => randn(b, 4));
    }

    [Fact]
    public void ToOnnx_DynamicAxisBeyondTheSampleRank_IsRefused()
    {
        using var directory = new TempDirectory();
        var options = new OnnxExportOptions
        {
            DynamicAxes = new Dictionary<string, IReadOnlyDictionary<int, string>> { ["input"] = new Dictionary<int, string> { [2] = "time" } },
        };

        var error = Assert.Throws<ArgumentException>(() => nn.Linear(2, 2).ToOnnx(directory.Combine("m.onnx"), randn(1, 2), options));

        Assert.Contains("DynamicAxes['input'] names axis 2, but the input sample has rank 2", error.Message);
    }

    [Fact]
    public void ToOnnx_GraphOutputWithoutEvaluate_SaysHowToGiveItAShape()
    {
        using var directory = new TempDirectory();
        var error = Assert.Throws<InvalidOperationException>(() =>
            new NoShape().ToOnnx(directory.Combine("m.onnx"), randn(2, 3)));

        Assert.Contains("returned ONNX value '/Relu_output_0' whose shape is unknown", error.Message);
        Assert.Contains("pass evaluate:", error.Message);
    }

    /// <summary>No single-tensor forward, so the exporter cannot fill in the shape of a node made without evaluate.</summary>
    private sealed class NoShape() : nn.Module(nameof(NoShape)), IOnnxExportable
    {
        public IReadOnlyList<OnnxValue> ExportOnnx(OnnxGraph graph, IReadOnlyList<OnnxValue> inputs) =>
            [graph.Node("Relu", [inputs[0]])];
    }

    public static TheoryData<string, string> Refusals => new()
    {
        { "divisor_override", "AvgPool2d '0' sets divisor_override = 3, which ONNX AveragePool cannot express" },
        { "divisor_override 3-D", "AvgPool3d '0' sets divisor_override = 5, which ONNX AveragePool cannot express; leave it unset" },
        { "adaptive", "AdaptiveMaxPool2d '0' pools [2, 3, 7, 7] to [2, 2]; ONNX has no adaptive pooling" },
        { "glu odd", "GLU '0' halves axis -1 of [2, 5]; that axis must have a fixed, even size" },
        { "glu dynamic", "GLU '0' halves axis 1 of [2, 4]; that axis must have a fixed, even size (leave it out of OnnxExportOptions.DynamicAxes)" },
        { "groupnorm dynamic channels", "GroupNorm '0' needs a fixed channel count; axis 1 of [2, 4, 3] is dynamic" },
        { "pairwise p 0", "PairwiseDistance the exported module has p = 0; the exporter writes p > 0" },
        { "pairwise p negative", "PairwiseDistance the exported module has p = -1.5; the exporter writes p > 0 (including infinity)" },
        { "3-D attn_mask", "attn_mask has shape [4, 3, 3]; TorchSharp's attention takes a 2-D [target, source] mask" },
        { "float key padding", "key_padding_mask is Float32; it must be Bool (true marks padding)" },
        { "embedding bag offsets", "EmbeddingBag the exported module is exported for 2-D input [bags, bag size] with no offsets" },
        { "embedding bag padding_index", "EmbeddingBag the exported module: no bag reduction (sum, mean, max) of the looked-up rows reproduces the layer on the sample; a bag holding the padding_index is not exported" },
        { "float indices", "Embedding '0' takes integer indices; the input is Float32" },
    };

    [Theory]
    [MemberData(nameof(Refusals))]
    public void ToOnnx_WhatOnnxCannotExpress_IsRefusedWithTheLayerPathValueAndWhatIsAllowed(string what, string message)
    {
        using var directory = new TempDirectory();
        var path = directory.Combine("m.onnx");
        Action export = what switch
        {
            "divisor_override" => () => nn.Sequential(nn.AvgPool2d(2, divisor_override: 3)).ToOnnx(path, randn(2, 3, 4, 4)),
            "divisor_override 3-D" => () => nn.Sequential(nn.AvgPool3d(2, divisor_override: 5)).ToOnnx(path, randn([2, 3, 4, 4, 4])),
            "adaptive" => () => nn.Sequential(nn.AdaptiveMaxPool2d([2, 2])).ToOnnx(path, randn(2, 3, 7, 7)),
            "glu odd" => () => nn.Sequential(nn.GLU(-1)).ToOnnx(path, randn(2, 5)),
            "glu dynamic" => () => nn.Sequential(nn.GLU(1)).ToOnnx(path, randn(2, 4), Dynamic(("batch", 0), ("features", 1))),
            "groupnorm dynamic channels" => () => nn.Sequential(nn.GroupNorm(2, 4)).ToOnnx(path, randn(2, 4, 3), Dynamic(("batch", 0), ("channels", 1))),
            "pairwise p 0" => () => nn.PairwiseDistance(0).ToOnnx(path, [randn(2, 4), randn(2, 4)]),
            "pairwise p negative" => () => nn.PairwiseDistance(-1.5).ToOnnx(path, [randn(2, 4), randn(2, 4)]),
            // Mean mode leaves the padding index out of the count, so the sample's bags holding it match no plain reduction.
            "embedding bag padding_index" => () => nn.EmbeddingBag(10, 4, mode: EmbeddingBagMode.Mean, padding_index: 0)
                .ToOnnx(path, [tensor(new long[,] { { 0, 1, 2 }, { 3, 0, 4 } })]),
            "3-D attn_mask" => () => nn.MultiheadAttention(4, 2).ToOnnx(path, [randn(3, 2, 4), randn(3, 2, 4), randn(3, 2, 4), zeros(2, 3, ScalarType.Bool), zeros(4, 3, 3)],
                new OnnxExportOptions { DynamicAxes = new Dictionary<string, IReadOnlyDictionary<int, string>>() }),
            "float key padding" => () => nn.MultiheadAttention(4, 2).ToOnnx(path, [randn(3, 2, 4), randn(3, 2, 4), randn(3, 2, 4), zeros(2, 3)],
                new OnnxExportOptions { DynamicAxes = new Dictionary<string, IReadOnlyDictionary<int, string>>() }),
            "embedding bag offsets" => () => nn.EmbeddingBag(10, 4).ToOnnx(path, [tensor(new long[] { 1, 2, 3, 4 }), tensor(new long[] { 0, 2 })],
                new OnnxExportOptions { DynamicAxes = new Dictionary<string, IReadOnlyDictionary<int, string>>() }),
            _ => () => nn.Sequential(nn.Embedding(10, 4)).ToOnnx(path, randn(2, 3)),
        };

        var error = Assert.ThrowsAny<Exception>(export);

        Assert.True(error is NotSupportedException or ArgumentException, $"{error.GetType().Name}: {error.Message}");
        Assert.Contains(message, error.Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(directory.Path));
    }

    private static OnnxExportOptions Dynamic(params (string Name, int Axis)[] axes) => new()
    {
        DynamicAxes = new Dictionary<string, IReadOnlyDictionary<int, string>> { ["input"] = axes.ToDictionary(a => a.Axis, a => a.Name) },
    };

    [OnnxCheckerFact]
    public void OnnxChecker_ModelWithAnUndefinedInput_IsRejected()
    {
        using var directory = new TempDirectory();
        var path = directory.Combine("broken.onnx");
        var model = new Lightning.Onnx.Proto.ModelProto { IrVersion = 8, Graph = new Lightning.Onnx.Proto.GraphProto { Name = "broken" } };
        model.OpsetImport.Add(new Lightning.Onnx.Proto.OperatorSetIdProto { Domain = "", Version = 17 });
        var node = new Lightning.Onnx.Proto.NodeProto { OpType = "Relu", Name = "relu" };
        node.Input.Add("missing");
        node.Output.Add("y");
        model.Graph.Node.Add(node);
        File.WriteAllBytes(path, Google.Protobuf.MessageExtensions.ToByteArray(model));

        var error = Assert.ThrowsAny<Xunit.Sdk.XunitException>(() => OnnxChecker.AssertValid(path));

        Assert.Contains("The ONNX checker rejects broken.onnx", error.Message);
    }

    private sealed class Doubler() : nn.Module<Tensor, Tensor>(nameof(Doubler))
    {
        public override Tensor forward(Tensor x) => x * 2;
    }

    private sealed class Halver() : nn.Module<Tensor, Tensor>(nameof(Halver))
    {
        public override Tensor forward(Tensor x) => x / 2;
    }

    private sealed class Wrapper : nn.Module<Tensor, Tensor>, IOnnxExportable
    {
        private readonly nn.Module<Tensor, Tensor> encoder;

        public Wrapper(nn.Module<Tensor, Tensor> encoder) : base(nameof(Wrapper))
        {
            this.encoder = encoder;
            RegisterComponents();
        }

        public override Tensor forward(Tensor x) => encoder.forward(x);

        public IReadOnlyList<OnnxValue> ExportOnnx(OnnxGraph graph, IReadOnlyList<OnnxValue> inputs) => [graph.Call(encoder, inputs[0])];
    }
}
