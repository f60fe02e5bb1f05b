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
    private static nn.Module<Tensor, Tensor> Trained(BatchNorm norm, Tensor data)
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

    private static nn.Module<Tensor, Tensor> Perturbed(LayerNorm norm)
    {
        using (no_grad())
        {
            norm.weight!.uniform_(0.5, 1.5);
            norm.bias!.uniform_(-0.5, 0.5);
        }
        return norm;
    }
}
