using Lightning.Onnx;
using Lightning.Testing;
using Microsoft.ML;
using Microsoft.ML.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.MLNet.Tests;

/// <summary>The estimator with TrainerOptions.MemoryFormat: channels-last training of a CNN that makes its images from the feature vector.</summary>
public sealed class MemoryFormatTests : IDisposable
{
    private readonly TempDirectory _root = new();
    private readonly MLContext _ml = new(seed: 0);

    public void Dispose() => _root.Dispose();

    private LightningTrainerOptions Options(string memoryFormat) => new()
    {
        LabelColumnName = nameof(Row.Class),
        TrainerOptions = new TrainerOptions
        {
            MaxEpochs = 3, DefaultRootDir = _root.Path, EnableProgressBar = false, EnableModelSummary = false, MemoryFormat = memoryFormat,
        },
        BatchSize = 32,
        Seed = 7,
    };

    [Fact]
    public void ChannelsLast_TrainsTheConvWeightsChannelsLast_AndScoresAsTheDefaultDoes()
    {
        var train = Data.View(_ml, Data.Rows(256, seed: 1));
        var test = Data.View(_ml, Data.Rows(64, seed: 2));
        var modules = new List<ImageCnn>();
        ImageCnn Make()
        {
            var module = new ImageCnn();
            modules.Add(module);
            return module;
        }

        using var standard = _ml.MulticlassClassification.Trainers.Lightning(Make, Options("contiguous_format")).Fit(train);
        using var channelsLast = _ml.MulticlassClassification.Trainers.Lightning(Make, Options("channels_last")).Fit(train);

        // One input channel: channels-last weights differ from contiguous ones only in the stride of that channel.
        Assert.NotEqual(1, modules[0].ConvWeight.stride()[1]);
        Assert.Equal(1, modules[1].ConvWeight.stride()[1]);
        var expected = Scores(standard.Transform(test));
        var actual = Scores(channelsLast.Transform(test));
        for (int row = 0; row < expected.Length; row++)
            for (int k = 0; k < expected[row].Length; k++)
                Assert.True(Math.Abs(expected[row][k] - actual[row][k]) < 1e-4, $"row {row} class {k}: {expected[row][k]} vs {actual[row][k]}");
    }

    [Fact]
    public void UnknownMemoryFormat_FailsAtFitNamingTheOptionAndTheAllowedValues()
    {
        var train = Data.View(_ml, Data.Rows(64, seed: 1));

        var error = Assert.Throws<ArgumentOutOfRangeException>(() =>
            _ml.MulticlassClassification.Trainers.Lightning(() => new ImageCnn(), Options("NHWC")).Fit(train));

        Assert.Equal("MemoryFormat", error.ParamName);
        Assert.Contains("MemoryFormat = \"NHWC\" is not allowed", error.Message);
        Assert.Contains("\"channels_last\"", error.Message);
    }

    private static float[][] Scores(IDataView scored) =>
        scored.GetColumn<VBuffer<float>>("Score").Select(v => v.DenseValues().ToArray()).ToArray();

    /// <summary>Unflattens the 20 features into a 1 × 4 × 5 image, one conv-BN-ReLU block, a linear head.</summary>
    private sealed class ImageCnn : LightningModule<IList<Tensor>>, IOnnxExportable
    {
        private readonly TorchSharp.Modules.Sequential net;

        public ImageCnn() : base(nameof(ImageCnn))
        {
            net = nn.Sequential(nn.Unflatten(1, [1, 4, 5]), nn.Conv2d(1, 8, 3, padding: 1, bias: false), nn.BatchNorm2d(8), nn.ReLU(),
                nn.Flatten(), nn.Linear(8 * 4 * 5, Data.ClassCount));
            RegisterComponents();
        }

        public Tensor ConvWeight => ((TorchSharp.Modules.Conv2d)net.children().ElementAt(1)).weight!;

        public IReadOnlyList<OnnxValue> ExportOnnx(OnnxGraph graph, IReadOnlyList<OnnxValue> inputs) => [graph.Call(net, inputs[0])];

        public override Tensor TrainingStep(IList<Tensor> batch, int batchIdx) => nn.functional.cross_entropy(net.forward(batch[0]), batch[1]);

        public override OptimizerConfiguration ConfigureOptimizers() => optim.Adam(parameters(), 0.01);
    }
}
