using Lightning.Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Onnx;

/// <summary>Every covered layer, exported alone and compared with ONNX Runtime at two batch sizes.</summary>
public class OnnxLayerTests
{
    private sealed record Case(Func<nn.Module<Tensor, Tensor>> Module, Func<long, Tensor> Input, int Opset = OnnxExportOptions.DefaultOpset);

    private static readonly Dictionary<string, Case> s_cases = new()
    {
        ["Linear 2-D (Gemm)"] = new(() => nn.Linear(8, 4), b => randn(b, 8)),
        ["Linear 3-D (MatMul)"] = new(() => nn.Linear(8, 4), b => randn(b, 5, 8)),
        ["Linear without bias"] = new(() => nn.Linear(8, 4, hasBias: false), b => randn(b, 8)),
        ["Conv1d stride padding"] = new(() => nn.Conv1d(3, 4, 3, stride: 2, padding: 1), b => randn(b, 3, 16)),
        ["Conv2d stride padding dilation groups"] = new(() => nn.Conv2d(4, 6, 3, stride: 2, padding: 1, dilation: 2, groups: 2), b => randn(b, 4, 12, 12)),
        ["Conv2d same padding, even kernel"] = new(() => nn.Conv2d(3, 4, 4, padding: Padding.Same, bias: false), b => randn(b, 3, 9, 9)),
        ["ConvTranspose2d"] = new(() => nn.ConvTranspose2d(4, 2, 3, stride: 2, padding: 1, output_padding: 1), b => randn(b, 4, 5, 5)),
        ["BatchNorm1d 2-D"] = new(() => Trained(nn.BatchNorm1d(6), randn(16, 6)), b => randn(b, 6)),
        ["BatchNorm1d 3-D"] = new(() => Trained(nn.BatchNorm1d(6), randn(16, 6, 7)), b => randn(b, 6, 7)),
        ["BatchNorm2d"] = new(() => Trained(nn.BatchNorm2d(3), randn(8, 3, 5, 5)), b => randn(b, 3, 5, 5)),
        ["LayerNorm opset 17"] = new(() => Perturbed(nn.LayerNorm([5, 6])), b => randn(b, 4, 5, 6)),
        ["LayerNorm opset 13"] = new(() => Perturbed(nn.LayerNorm([5, 6])), b => randn(b, 4, 5, 6), 13),
        ["Dropout after Linear"] = new(() => nn.Sequential(nn.Linear(8, 4), nn.Dropout(0.5)), b => randn(b, 8)),
        ["Dropout alone"] = new(() => nn.Dropout(0.5), b => randn(b, 8)),
        ["Identity"] = new(() => nn.Identity(), b => randn(b, 3)),
        ["Flatten"] = new(() => nn.Flatten(), b => randn(b, 3, 4, 5)),
        ["Flatten middle axes"] = new(() => nn.Flatten(2, 3), b => randn(b, 3, 4, 5)),
        ["Flatten everything"] = new(() => nn.Flatten(0, -1), b => randn(b, 3, 4)),
        ["Unflatten"] = new(() => nn.Unflatten(1, [4, 5]), b => randn(b, 20)),
        ["Embedding"] = new(() => nn.Embedding(10, 4), b => randint(0, 10, [b, 7])),
        ["Embedding padding_idx"] = new(() => nn.Embedding(10, 4, padding_idx: 0), b => randint(0, 10, [b, 7])),
        ["Embedding max_norm"] = new(() => nn.Embedding(10, 4, max_norm: 1.0), b => randint(0, 10, [b, 7])),
        ["MaxPool2d"] = new(() => nn.MaxPool2d(3, stride: 2, padding: 1), b => randn(b, 3, 9, 9)),
        ["MaxPool2d dilation"] = new(() => nn.MaxPool2d(2, dilation: 2), b => randn(b, 3, 9, 9)),
        ["AvgPool2d"] = new(() => nn.AvgPool2d(2), b => randn(b, 3, 8, 8)),
        ["AvgPool2d padding counted"] = new(() => nn.AvgPool2d(3, stride: 2, padding: 1), b => randn(b, 3, 9, 9)),
        ["AvgPool2d padding not counted"] = new(() => nn.AvgPool2d(3, stride: 2, padding: 1, count_include_pad: false), b => randn(b, 3, 9, 9)),
        ["AdaptiveAvgPool2d 1x1"] = new(() => nn.AdaptiveAvgPool2d(1), b => randn(b, 3, 5, 7)),
        ["AdaptiveAvgPool2d 2x2 divisible"] = new(() => nn.AdaptiveAvgPool2d([2, 2]), b => randn(b, 3, 6, 4)),
        ["ReLU"] = new(() => nn.ReLU(), b => randn(b, 10)),
        ["LeakyReLU"] = new(() => nn.LeakyReLU(0.2), b => randn(b, 10)),
        ["ELU"] = new(() => nn.ELU(0.7), b => randn(b, 10)),
        ["GELU exact opset 17"] = new(() => nn.GELU(), b => randn(b, 10) * 3),
        ["GELU tanh opset 17"] = new(() => nn.GELU(GELU.Approximate.tanh), b => randn(b, 10) * 3),
        ["GELU exact opset 20"] = new(() => nn.GELU(), b => randn(b, 10) * 3, 20),
        ["GELU tanh opset 20"] = new(() => nn.GELU(GELU.Approximate.tanh), b => randn(b, 10) * 3, 20),
        ["SiLU"] = new(() => nn.SiLU(), b => randn(b, 10)),
        ["Sigmoid"] = new(() => nn.Sigmoid(), b => randn(b, 10)),
        ["Tanh"] = new(() => nn.Tanh(), b => randn(b, 10)),
        ["Softmax axis 1"] = new(() => nn.Softmax(1), b => randn(b, 4, 3)),
        ["Softmax last axis"] = new(() => nn.Softmax(-1), b => randn(b, 4, 3)),
        ["LogSoftmax"] = new(() => nn.LogSoftmax(-1), b => randn(b, 6)),
        ["LogSoftmax axis 1 of 3"] = new(() => nn.LogSoftmax(1), b => randn(b, 4, 3)),
        ["Softmin"] = new(() => nn.Softmin(1), b => randn(b, 4, 3)),
        ["Softmax2d"] = new(() => nn.Softmax2d(), b => randn(b, 3, 4, 4)),
        ["ReLU6"] = new(() => nn.ReLU6(), b => randn(b, 10) * 5),
        ["Hardtanh"] = new(() => nn.Hardtanh(-0.5, 2), b => randn(b, 10) * 2),
        ["CELU"] = new(() => nn.CELU(0.6), b => randn(b, 10)),
        ["SELU"] = new(() => nn.SELU(), b => randn(b, 10)),
        ["Mish opset 17"] = new(() => nn.Mish(), b => randn(b, 10) * 3),
        ["Mish opset 18"] = new(() => nn.Mish(), b => randn(b, 10) * 3, 18),
        ["Hardsigmoid"] = new(() => nn.Hardsigmoid(), b => randn(b, 10) * 4),
        ["Hardswish opset 13"] = new(() => nn.Hardswish(), b => randn(b, 10) * 4, 13),
        ["Hardswish opset 14"] = new(() => nn.Hardswish(), b => randn(b, 10) * 4, 14),
        ["PReLU shared"] = new(() => nn.PReLU(1, 0.3), b => randn(b, 3, 5)),
        ["PReLU per channel"] = new(() => Perturbed(nn.PReLU(3, 0.1)), b => randn(b, 3, 4, 4)),
        ["RReLU eval"] = new(() => nn.RReLU(0.1, 0.3), b => randn(b, 10)),
        ["Softplus"] = new(() => nn.Softplus(), b => randn(b, 10) * 10),
        ["Softplus beta threshold"] = new(() => nn.Softplus(2, 5), b => randn(b, 10) * 4),
        ["Softsign"] = new(() => nn.Softsign(), b => randn(b, 10)),
        ["LogSigmoid"] = new(() => nn.LogSigmoid(), b => randn(b, 10) * 3),
        ["Tanhshrink"] = new(() => nn.Tanhshrink(), b => randn(b, 10)),
        ["Softshrink"] = new(() => nn.Softshrink(0.4), b => randn(b, 10)),
        ["Hardshrink"] = new(() => nn.Hardshrink(0.4), b => randn(b, 10)),
        ["Threshold"] = new(() => nn.Threshold(0.2, -3), b => randn(b, 10)),
        ["GLU"] = new(() => nn.GLU(-1), b => randn(b, 3, 8)),
        ["GLU axis 1"] = new(() => nn.GLU(1), b => randn(b, 4, 5)),
        ["BatchNorm3d"] = new(() => Trained(nn.BatchNorm3d(3), randn([4, 3, 4, 4, 4])), b => randn([b, 3, 4, 4, 4])),
        ["InstanceNorm1d"] = new(() => nn.InstanceNorm1d(3), b => randn(b, 3, 9)),
        ["InstanceNorm2d affine"] = new(() => Perturbed(nn.InstanceNorm2d(3, affine: true)), b => randn(b, 3, 5, 6)),
        ["InstanceNorm3d"] = new(() => nn.InstanceNorm3d(2), b => randn([b, 2, 3, 4, 5])),
        ["InstanceNorm2d running stats"] = new(() => Trained(nn.InstanceNorm2d(3, affine: true, track_running_stats: true), randn(8, 3, 5, 5)), b => randn(b, 3, 5, 5)),
        ["GroupNorm opset 17"] = new(() => Perturbed(nn.GroupNorm(2, 6)), b => randn(b, 6, 4, 3)),
        ["GroupNorm opset 18"] = new(() => Perturbed(nn.GroupNorm(3, 6)), b => randn(b, 6, 5), 18),
        ["GroupNorm opset 21"] = new(() => Perturbed(nn.GroupNorm(3, 6)), b => randn(b, 6, 4, 3), 21),
        ["LocalResponseNorm"] = new(() => nn.LocalResponseNorm(3, 0.001, 0.75, 2), b => randn(b, 6, 4, 4)),
        ["MaxPool1d"] = new(() => nn.MaxPool1d(3, stride: 2, padding: 1), b => randn(b, 3, 11)),
        ["MaxPool1d ceil dilation"] = new(() => nn.MaxPool1d(2, dilation: 2, ceil_mode: true), b => randn(b, 3, 10)),
        ["MaxPool2d ceil"] = new(() => nn.MaxPool2d(3, stride: 2, ceil_mode: true), b => randn(b, 3, 8, 8)),
        ["MaxPool3d"] = new(() => nn.MaxPool3d(2), b => randn([b, 2, 4, 6, 4])),
        ["AvgPool1d"] = new(() => nn.AvgPool1d(3, stride: 2, padding: 1), b => randn(b, 3, 11)),
        ["AvgPool1d no pad count"] = new(() => nn.AvgPool1d(3, stride: 2, padding: 1, count_include_pad: false), b => randn(b, 3, 11)),
        ["AvgPool2d ceil"] = new(() => nn.AvgPool2d(3, stride: 2, ceil_mode: true), b => randn(b, 3, 8, 8)),
        ["AvgPool3d"] = new(() => nn.AvgPool3d(2), b => randn([b, 2, 4, 4, 4])),
        ["AdaptiveAvgPool1d 1"] = new(() => nn.AdaptiveAvgPool1d(1), b => randn(b, 3, 7)),
        ["AdaptiveAvgPool1d 3"] = new(() => nn.AdaptiveAvgPool1d(3), b => randn(b, 3, 9)),
        ["AdaptiveAvgPool3d 1"] = new(() => nn.AdaptiveAvgPool3d(1), b => randn([b, 2, 3, 4, 5])),
        ["AdaptiveMaxPool1d 2"] = new(() => nn.AdaptiveMaxPool1d(2), b => randn(b, 3, 8)),
        ["AdaptiveMaxPool2d 1"] = new(() => nn.AdaptiveMaxPool2d([1, 1]), b => randn(b, 3, 5, 7)),
        // AdaptiveMaxPool3d is converted like these, but TorchSharp 0.107's own forward of it throws, so it has no reference here.
        ["AdaptiveAvgPool3d 2"] = new(() => nn.AdaptiveAvgPool3d([2, 2, 2]), b => randn([b, 2, 4, 4, 4])),
        ["LPPool1d"] = new(() => nn.LPPool1d(2, 3, 2), b => randn(b, 3, 9)),
        ["LPPool2d"] = new(() => nn.LPPool2d(1, 2), b => randn(b, 3, 6, 6)),
        ["LPPool2d ceil"] = new(() => nn.LPPool2d(2, 3, 2L, ceil_mode: true), b => randn(b, 3, 8, 8)),
        ["LPPool1d p 3 ceil"] = new(() => nn.LPPool1d(3, 2, ceil_mode: true), b => randn(b, 3, 9)),
        ["ConstantPad1d"] = new(() => nn.ConstantPad1d(2, 1.5), b => randn(b, 3, 5)),
        ["ConstantPad2d"] = new(() => nn.ConstantPad2d((1, 2, 0, 3), -1), b => randn(b, 3, 4, 4)),
        ["ConstantPad3d"] = new(() => nn.ConstantPad3d(1, 0.5), b => randn([b, 2, 3, 3, 3])),
        ["ZeroPad2d"] = new(() => nn.ZeroPad2d((2, 1, 1, 0)), b => randn(b, 3, 4, 4)),
        ["ReflectionPad1d"] = new(() => nn.ReflectionPad1d((2, 1)), b => randn(b, 3, 5)),
        ["ReflectionPad2d"] = new(() => nn.ReflectionPad2d((1, 2, 2, 1)), b => randn(b, 3, 4, 5)),
        ["ReflectionPad3d"] = new(() => nn.ReflectionPad3d(1), b => randn([b, 2, 3, 3, 3])),
        ["ReplicationPad1d"] = new(() => nn.ReplicationPad1d((2, 1)), b => randn(b, 3, 5)),
        ["ReplicationPad2d"] = new(() => nn.ReplicationPad2d((1, 2, 2, 1)), b => randn(b, 3, 4, 5)),
        ["ReplicationPad3d"] = new(() => nn.ReplicationPad3d(1), b => randn([b, 2, 3, 3, 3])),
        ["Conv1d reflect"] = new(() => nn.Conv1d(3, 4, 3, padding: 2, padding_mode: PaddingModes.Reflect), b => randn(b, 3, 8)),
        ["Conv2d replicate"] = new(() => nn.Conv2d(3, 4, 3, padding: 1, padding_mode: PaddingModes.Replicate), b => randn(b, 3, 6, 6)),
        ["Conv2d circular"] = new(() => nn.Conv2d(3, 4, 3, padding: 1, padding_mode: PaddingModes.Circular), b => randn(b, 3, 6, 5)),
        ["Conv2d circular same"] = new(() => nn.Conv2d(2, 2, 4, padding: Padding.Same, padding_mode: PaddingModes.Circular), b => randn(b, 2, 6, 6)),
        ["Conv3d"] = new(() => nn.Conv3d(2, 3, 3, padding: 1), b => randn([b, 2, 4, 4, 4])),
        ["ConvTranspose1d"] = new(() => nn.ConvTranspose1d(3, 2, 3, stride: 2), b => randn(b, 3, 5)),
        ["ConvTranspose3d"] = new(() => nn.ConvTranspose3d(2, 2, 2, stride: 2), b => randn([b, 2, 2, 3, 2])),
        ["Upsample nearest scale"] = new(() => nn.Upsample(scale_factor: [2, 2], mode: UpsampleMode.Nearest), b => randn(b, 3, 4, 5)),
        ["Upsample nearest size"] = new(() => nn.Upsample(size: [7, 9], mode: UpsampleMode.Nearest), b => randn(b, 3, 4, 5)),
        ["Upsample linear 1-D"] = new(() => nn.Upsample(scale_factor: [2], mode: UpsampleMode.Linear), b => randn(b, 3, 5)),
        ["Upsample bilinear"] = new(() => nn.Upsample(scale_factor: [2, 3], mode: UpsampleMode.Bilinear), b => randn(b, 3, 4, 5)),
        ["Upsample bilinear align corners"] = new(() => nn.Upsample(size: [8, 7], mode: UpsampleMode.Bilinear, align_corners: true), b => randn(b, 3, 4, 5)),
        ["Upsample bilinear scale 1.5"] = new(() => nn.Upsample(scale_factor: [1.5, 1.5], mode: UpsampleMode.Bilinear), b => randn(b, 2, 4, 5)),
        ["Upsample bilinear scale 1.5 recomputed"] = new(() => nn.Upsample(scale_factor: [1.5, 1.5], mode: UpsampleMode.Bilinear, recompute_scale_factor: true), b => randn(b, 2, 4, 5)),
        ["Upsample nearest scale 1.5"] = new(() => nn.Upsample(scale_factor: [1.5, 1.5], mode: UpsampleMode.Nearest), b => randn(b, 2, 4, 5)),
        ["Upsample bicubic"] = new(() => nn.Upsample(scale_factor: [2, 2], mode: UpsampleMode.Bicubic), b => randn(b, 2, 4, 4)),
        ["Upsample trilinear"] = new(() => nn.Upsample(scale_factor: [2, 2, 2], mode: UpsampleMode.Trilinear), b => randn([b, 2, 2, 3, 2])),
        ["PixelShuffle"] = new(() => nn.PixelShuffle(2), b => randn(b, 8, 3, 4)),
        ["PixelUnshuffle"] = new(() => nn.PixelUnshuffle(2), b => randn(b, 2, 4, 6)),
        ["ChannelShuffle"] = new(() => nn.ChannelShuffle(3), b => randn(b, 6, 2, 3)),
        ["Dropout3d"] = new(() => nn.Dropout3d(0.5), b => randn([b, 2, 3, 3, 3])),
        ["AlphaDropout"] = new(() => nn.AlphaDropout(0.5), b => randn(b, 6)),
        ["FeatureAlphaDropout"] = new(() => nn.FeatureAlphaDropout(0.5), b => randn(b, 3, 4)),
        ["Unfold"] = new(() => nn.Unfold((2, 3), padding: (1, 1), stride: (2, 1)), b => randn(b, 3, 6, 7)),
        ["Unfold dilation"] = new(() => nn.Unfold(2, dilation: 2), b => randn(b, 2, 5, 5)),
        ["Fold"] = new(() => nn.Fold((5, 6), (2, 2)), b => randn(b, 3 * 4, 4 * 5)),
        ["Fold stride padding"] = new(() => nn.Fold((6, 6), (3, 3), padding: (1, 1), stride: (2, 2)), b => randn(b, 2 * 9, 3 * 3)),
    };

    public static TheoryData<string> Layers => [.. s_cases.Keys];

    [Theory]
    [MemberData(nameof(Layers))]
    public void ToOnnx_Layer_MatchesTorchSharpAtTwoBatchSizes(string layer)
    {
        var (module, input, opset) = s_cases[layer];
        manual_seed(1);
        OnnxParity.AssertMatches(module(), input, new OnnxExportOptions { Opset = opset });
    }

    public static TheoryData<string, long, bool, bool> RecurrentShapes => new()
    {
        // kind, layers, bidirectional, batch first
        { "LSTM", 1, false, false },
        { "LSTM", 2, true, true },
        { "GRU", 1, false, false },
        { "GRU", 2, true, true },
        { "RNN tanh", 1, false, true },
        { "RNN relu", 2, true, false },
    };

    [Theory]
    [MemberData(nameof(RecurrentShapes))]
    public void ToOnnx_Recurrent_MatchesEveryOutput(string kind, long layers, bool bidirectional, bool batchFirst)
    {
        manual_seed(2);
        nn.Module rnn = kind switch
        {
            "LSTM" => nn.LSTM(5, 6, numLayers: layers, bidirectional: bidirectional, batchFirst: batchFirst),
            "GRU" => nn.GRU(5, 6, numLayers: layers, bidirectional: bidirectional, batchFirst: batchFirst),
            _ => nn.RNN(5, 6, layers, kind == "RNN relu" ? nn.NonLinearities.ReLU : nn.NonLinearities.Tanh, bidirectional: bidirectional, batchFirst: batchFirst),
        };
        Tensor Input(long b, long s) => batchFirst ? randn(b, s, 5) : randn(s, b, 5);
        var options = new OnnxExportOptions
        {
            DynamicAxes = new Dictionary<string, IReadOnlyDictionary<int, string>>
            {
                ["input"] = batchFirst ? new Dictionary<int, string> { [0] = "batch", [1] = "sequence" } : new Dictionary<int, string> { [0] = "sequence", [1] = "batch" },
            },
        };

        OnnxParity.AssertMatches(rnn, (b, s) => [Input(b, s)], s => Forward(rnn, s), options);
    }

    public static TheoryData<string, bool> Cells => new()
    {
        { "RNNCell tanh", false }, { "RNNCell relu", true }, { "GRUCell", false }, { "GRUCell", true }, { "LSTMCell", false }, { "LSTMCell", true },
    };

    [Theory]
    [MemberData(nameof(Cells))]
    public void ToOnnx_RecurrentCell_MatchesEveryOutput(string kind, bool withState)
    {
        manual_seed(3);
        nn.Module cell = kind switch
        {
            "LSTMCell" => nn.LSTMCell(5, 6),
            "GRUCell" => nn.GRUCell(5, 6),
            _ => nn.RNNCell(5, 6, kind == "RNNCell relu" ? nn.NonLinearities.ReLU : nn.NonLinearities.Tanh),
        };
        int states = !withState ? 0 : kind == "LSTMCell" ? 2 : 1;
        Tensor[] Inputs(long b) => [randn(b, 5), .. Enumerable.Range(0, states).Select(_ => randn(b, 6))];
        Tensor[] Forward(Tensor[] x) => cell switch
        {
            // TorchSharp 0.107's LSTMCell fails without a state; zeros is PyTorch's default.
            LSTMCell lstm => lstm.forward(x[0], x.Length == 3 ? (x[1], x[2]) : (zeros(x[0].size(0), 6), zeros(x[0].size(0), 6))) is var (h, c) ? [h, c] : [],
            GRUCell gru => [gru.forward(x[0], x.Length == 2 ? x[1] : null!)],
            _ => [((RNNCell)cell).forward(x[0], x.Length == 2 ? x[1] : null!)],
        };
        var names = Enumerable.Range(0, 1 + states).Select(i => $"input_{i}").ToArray();
        OnnxParity.AssertMatches(cell, Inputs, Forward, new OnnxExportOptions
        {
            InputNames = names,
            DynamicAxes = names.ToDictionary(n => n, IReadOnlyDictionary<int, string> (_) => new Dictionary<int, string> { [0] = "batch" }),
        });
    }

    private sealed record MultiInputCase(Func<nn.Module> Module, Func<long, Tensor[]> Inputs, Func<nn.Module, Tensor[], Tensor> Forward);

    private static readonly Dictionary<string, MultiInputCase> s_multiInput = new()
    {
        ["Bilinear"] = new(() => nn.Bilinear(4, 3, 5), b => [randn(b, 4), randn(b, 3)], (m, x) => ((Bilinear)m).forward(x[0], x[1])),
        ["Bilinear 3-D no bias"] = new(() => nn.Bilinear(4, 3, 5, hasBias: false), b => [randn(b, 2, 4), randn(b, 2, 3)], (m, x) => ((Bilinear)m).forward(x[0], x[1])),
        ["CosineSimilarity"] = new(() => nn.CosineSimilarity(), b => [randn(b, 6), randn(b, 6)], (m, x) => ((CosineSimilarity)m).forward(x[0], x[1])),
        ["CosineSimilarity last axis"] = new(() => nn.CosineSimilarity(-1), b => [randn(b, 3, 6), randn(b, 3, 6)], (m, x) => ((CosineSimilarity)m).forward(x[0], x[1])),
        ["PairwiseDistance p 2"] = new(() => nn.PairwiseDistance(), b => [randn(b, 6), randn(b, 6)], (m, x) => ((PairwiseDistance)m).forward(x[0], x[1])),
        ["PairwiseDistance p 1 keepdim"] = new(() => nn.PairwiseDistance(1, keepdim: true), b => [randn(b, 6), randn(b, 6)], (m, x) => ((PairwiseDistance)m).forward(x[0], x[1])),
        ["PairwiseDistance p 3"] = new(() => nn.PairwiseDistance(3), b => [randn(b, 6), randn(b, 6)], (m, x) => ((PairwiseDistance)m).forward(x[0], x[1])),
        ["PairwiseDistance p inf"] = new(() => nn.PairwiseDistance(double.PositiveInfinity), b => [randn(b, 6), randn(b, 6)], (m, x) => ((PairwiseDistance)m).forward(x[0], x[1])),
        ["EmbeddingBag sum"] = new(() => nn.EmbeddingBag(10, 4, mode: EmbeddingBagMode.Sum), b => [randint(0, 10, [b, 5])], (m, x) => ((EmbeddingBag)m).forward(x[0], null!, null!)),
        ["EmbeddingBag mean"] = new(() => nn.EmbeddingBag(10, 4, mode: EmbeddingBagMode.Mean), b => [randint(0, 10, [b, 5])], (m, x) => ((EmbeddingBag)m).forward(x[0], null!, null!)),
        ["EmbeddingBag max_norm"] = new(() => nn.EmbeddingBag(10, 4, max_norm: 0.5, mode: EmbeddingBagMode.Sum), b => [randint(0, 10, [b, 5])], (m, x) => ((EmbeddingBag)m).forward(x[0], null!, null!)),
        ["EmbeddingBag max"] = new(() => nn.EmbeddingBag(10, 4, mode: EmbeddingBagMode.Max), b => [randint(0, 10, [b, 5])], (m, x) => ((EmbeddingBag)m).forward(x[0], null!, null!)),
    };

    public static TheoryData<string, int> MultiInputLayers()
    {
        var data = new TheoryData<string, int>();
        foreach (var name in s_multiInput.Keys)
            foreach (var opset in new[] { 17, 18 })
                data.Add(name, opset);
        return data;
    }

    [Theory]
    [MemberData(nameof(MultiInputLayers))]
    public void ToOnnx_MultiInputLayer_MatchesTorchSharp(string layer, int opset)
    {
        var (module, inputs, forward) = s_multiInput[layer];
        manual_seed(4);
        var m = module();
        var names = Enumerable.Range(0, inputs(1).Length).Select(i => $"input_{i}").ToArray();
        OnnxParity.AssertMatches(m, inputs, x => [forward(m, x)], new OnnxExportOptions
        {
            Opset = opset,
            InputNames = names,
            DynamicAxes = names.ToDictionary(n => n, IReadOnlyDictionary<int, string> (_) => new Dictionary<int, string> { [0] = "batch" }),
        });
    }

    private static readonly Dictionary<string, (Func<nn.Module<Tensor, Tensor>> Module, Func<long, long, Tensor> Input, int Axis)> s_sequenceLayers = new()
    {
        ["Conv1d reflect"] = (() => nn.Conv1d(3, 4, 3, padding: 1, padding_mode: PaddingModes.Reflect), (b, s) => randn(b, 3, s + 4), 2),
        ["Conv1d circular same"] = (() => nn.Conv1d(3, 4, 4, padding: Padding.Same, padding_mode: PaddingModes.Circular), (b, s) => randn(b, 3, s + 4), 2),
        // At length 2 and batch 5, libtorch 2.10's CPU ConvTranspose1d disagrees with the formula (and ONNX Runtime agrees with it), so lengths start at 3.
        ["ConvTranspose1d"] = (() => nn.ConvTranspose1d(3, 2, 3, stride: 2), (b, s) => randn(b, 3, s + 1), 2),
        ["MaxPool1d ceil"] = (() => nn.MaxPool1d(2, ceil_mode: true), (b, s) => randn(b, 3, s + 4), 2),
        ["AvgPool1d"] = (() => nn.AvgPool1d(3, stride: 2, padding: 1), (b, s) => randn(b, 3, s + 4), 2),
        ["LPPool1d"] = (() => nn.LPPool1d(2, 2), (b, s) => randn(b, 3, s + 4), 2),
        ["AdaptiveMaxPool1d 1"] = (() => nn.AdaptiveMaxPool1d(1), (b, s) => randn(b, 3, s), 2),
        ["ReplicationPad1d"] = (() => nn.ReplicationPad1d((2, 1)), (b, s) => randn(b, 3, s + 2), 2),
        ["InstanceNorm1d"] = (() => nn.InstanceNorm1d(3), (b, s) => randn(b, 3, s + 2), 2),
        ["Upsample linear"] = (() => nn.Upsample(scale_factor: [2], mode: UpsampleMode.Linear), (b, s) => randn(b, 3, s), 2),
        ["Softmax over the sequence"] = (() => nn.Softmax(1), (b, s) => randn(b, s, 4), 1),
        ["LayerNorm over features"] = (() => nn.LayerNorm(4), (b, s) => randn(b, s, 4), 1),
        ["Linear 3-D"] = (() => nn.Linear(4, 3), (b, s) => randn(b, s, 4), 1),
        ["Embedding tokens"] = (() => nn.Embedding(10, 4), (b, s) => randint(0, 10, [b, s]), 1),
        ["Flatten 3-D"] = (() => nn.Flatten(), (b, s) => randn(b, s, 4), 1),
    };

    public static TheoryData<string> SequenceLayers => [.. s_sequenceLayers.Keys];

    /// <summary>Layers with a sequence (length) axis, exported with it dynamic and checked at two lengths as well as two batch sizes.</summary>
    [Theory]
    [MemberData(nameof(SequenceLayers))]
    public void ToOnnx_SequenceLayer_MatchesAtTwoBatchSizesAndLengths(string layer)
    {
        var (module, input, axis) = s_sequenceLayers[layer];
        manual_seed(6);
        var m = module();
        OnnxParity.AssertMatches(m, (b, s) => [input(b, s)], x => [m.forward(x[0])], new OnnxExportOptions
        {
            DynamicAxes = new Dictionary<string, IReadOnlyDictionary<int, string>> { ["input"] = new Dictionary<int, string> { [0] = "batch", [axis] = "sequence" } },
        });
    }

    public static TheoryData<int> AllOpsets => [13, 14, 15, 16, 17, 18, 19, 20, 21];

    /// <summary>One model through the layers whose lowering changes with the opset, exported at every opset.</summary>
    [Theory]
    [MemberData(nameof(AllOpsets))]
    public void ToOnnx_OpsetDependentLayers_MatchAtEveryOpset(int opset)
    {
        manual_seed(5);
        var model = nn.Sequential(
            nn.Conv2d(3, 6, 3, padding: 1, padding_mode: PaddingModes.Circular), Perturbed(nn.GroupNorm(3, 6)), nn.Mish(), nn.Hardswish(),
            nn.LPPool2d(2, 2), nn.Upsample(scale_factor: [2, 2], mode: UpsampleMode.Bilinear), nn.ReflectionPad2d(1),
            nn.AdaptiveAvgPool2d([1, 1]), nn.Flatten(), nn.LayerNorm(6), nn.GELU(GELU.Approximate.tanh), nn.Linear(6, 3), nn.Softmax(-1));
        OnnxParity.AssertMatches(model, b => randn(b, 3, 6, 6), new OnnxExportOptions { Opset = opset });
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void ToOnnx_RecurrentWithInitialState_MatchesEveryOutput(bool lstm)
    {
        manual_seed(3);
        nn.Module rnn = lstm ? nn.LSTM(5, 6, numLayers: 2, bidirectional: true) : nn.GRU(5, 6, numLayers: 2, bidirectional: true);
        Tensor[] Inputs(long b) => lstm ? [randn(4, b, 5), randn(4, b, 6), randn(4, b, 6)] : [randn(4, b, 5), randn(4, b, 6)];
        var batchOnAxis1 = new Dictionary<int, string> { [1] = "batch" };
        var names = lstm ? new[] { "x", "h0", "c0" } : ["x", "h0"];
        var options = new OnnxExportOptions
        {
            InputNames = names,
            DynamicAxes = names.ToDictionary(n => n, IReadOnlyDictionary<int, string> (_) => batchOnAxis1),
        };

        OnnxParity.AssertMatches(rnn, Inputs, s => Forward(rnn, s), options);
    }

    private static Tensor[] Forward(nn.Module rnn, Tensor[] inputs)
    {
        if (rnn is LSTM lstm)
        {
            var (y, h, c) = lstm.forward(inputs[0], inputs.Length == 3 ? (inputs[1], inputs[2]) : null);
            return [y, h, c];
        }
        var (output, hidden) = rnn is GRU gru ? gru.forward(inputs[0], inputs.Length == 2 ? inputs[1] : null)
            : ((RNN)rnn).forward(inputs[0], inputs.Length == 2 ? inputs[1] : null);
        return [output, hidden];
    }

    /// <summary>Running statistics away from their initial 0 and 1, and a non-trivial affine transform.</summary>
    private static nn.Module<Tensor, Tensor> Trained(NormBase norm, Tensor data)
    {
        norm.train();
        using (no_grad())
        {
            for (int i = 0; i < 5; i++) norm.forward(data * 2 + 1);
            norm.weight!.uniform_(0.5, 1.5);
            norm.bias!.uniform_(-0.5, 0.5);
        }
        return norm;
    }

    /// <summary>Weights (and biases) away from their initial values.</summary>
    private static nn.Module<Tensor, Tensor> Perturbed(nn.Module<Tensor, Tensor> module)
    {
        using (no_grad())
            foreach (var (name, parameter) in module.named_parameters())
                if (name == "bias") parameter.uniform_(-0.5, 0.5);
                else parameter.uniform_(0.5, 1.5);
        return module;
    }
}
