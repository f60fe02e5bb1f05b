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
        ["Upsample bicubic"] = new(() => nn.Upsample(scale_factor: [2, 2], mode: UpsampleMode.Bicubic), b => randn(b, 2, 4, 4)),
        ["Upsample trilinear"] = new(() => nn.Upsample(scale_factor: [2, 2, 2], mode: UpsampleMode.Trilinear), b => randn([b, 2, 2, 3, 2])),
        ["PixelShuffle"] = new(() => nn.PixelShuffle(2), b => randn(b, 8, 3, 4)),
        ["PixelUnshuffle"] = new(() => nn.PixelUnshuffle(2), b => randn(b, 2, 4, 6)),
        ["ChannelShuffle"] = new(() => nn.ChannelShuffle(3), b => randn(b, 6, 2, 3)),
        ["Dropout3d"] = new(() => nn.Dropout3d(0.5), b => randn([b, 2, 3, 3, 3])),
        ["AlphaDropout"] = new(() => nn.AlphaDropout(0.5), b => randn(b, 6)),
        ["FeatureAlphaDropout"] = new(() => nn.FeatureAlphaDropout(0.5), b => randn(b, 3, 4)),
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

    public static TheoryData<bool, long, bool, bool> RecurrentShapes => new()
    {
        // lstm, layers, bidirectional, batch first
        { true, 1, false, false },
        { true, 2, true, true },
        { false, 1, false, false },
        { false, 2, true, true },
    };

    [Theory]
    [MemberData(nameof(RecurrentShapes))]
    public void ToOnnx_Recurrent_MatchesEveryOutput(bool lstm, long layers, bool bidirectional, bool batchFirst)
    {
        manual_seed(2);
        nn.Module rnn = lstm
            ? nn.LSTM(5, 6, numLayers: layers, bidirectional: bidirectional, batchFirst: batchFirst)
            : nn.GRU(5, 6, numLayers: layers, bidirectional: bidirectional, batchFirst: batchFirst);
        // The sequence length changes with the batch, so both dynamic axes are exercised.
        Tensor Input(long b) => batchFirst ? randn(b, b + 3, 5) : randn(b + 3, b, 5);
        var options = new OnnxExportOptions
        {
            DynamicAxes = new Dictionary<string, IReadOnlyDictionary<int, string>>
            {
                ["input"] = batchFirst ? new Dictionary<int, string> { [0] = "batch", [1] = "sequence" } : new Dictionary<int, string> { [0] = "sequence", [1] = "batch" },
            },
        };

        OnnxParity.AssertMatches(rnn, b => [Input(b)], s => Forward(rnn, s), options);
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
        var (output, hidden) = ((GRU)rnn).forward(inputs[0], inputs.Length == 2 ? inputs[1] : null);
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
