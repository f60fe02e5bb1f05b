using TorchSharp.Modules;
using static Lightning.Onnx.Converters.LayerConverters;
using static TorchSharp.torch;

namespace Lightning.Onnx.Converters;

/// <summary>Converters for TorchSharp's activation modules.</summary>
internal static class ActivationConverters
{
    public static void Register(Action<Type, OnnxConverter<nn.Module>> add)
    {
        Add<ReLU>(add, (_, g, x) => g.Node("Relu", [x]));
        Add<LeakyReLU>(add, (m, g, x) => g.Node("LeakyRelu", [x], Attributes(("alpha", m.negative_slope))));
        Add<ELU>(add, (m, g, x) => g.Node("Elu", [x], Attributes(("alpha", m.alpha))));
        Add<GELU>(add, (m, g, x) => Gelu(g, x, m.approximate == GELU.Approximate.tanh, x.ElementType));
        // ONNX has Swish only from opset 24.
        Add<SiLU>(add, (_, g, x) => g.Node("Mul", [x, g.Node("Sigmoid", [x])]));
        Add<Sigmoid>(add, (_, g, x) => g.Node("Sigmoid", [x]));
        Add<Tanh>(add, (_, g, x) => g.Node("Tanh", [x]));
        Add<Softmax>(add, (m, g, x) => g.Node("Softmax", [x], Attributes(("axis", m.dim))));
        Add<LogSoftmax>(add, (m, g, x) => g.Node("LogSoftmax", [x], Attributes(("axis", m.dim))));
        Add<Softmin>(add, (m, g, x) => g.Node("Softmax", [g.Node("Neg", [x])], Attributes(("axis", m.dim))));
        Add<Softmax2d>(add, (_, g, x) => g.Node("Softmax", [x], Attributes(("axis", -3L))));
        Add<ReLU6>(add, (_, g, x) => Clip(g, x, 0, 6));
        Add<Hardtanh>(add, Hardtanh);
        Add<CELU>(add, (m, g, x) => g.Node("Celu", [x], Attributes(("alpha", m.alpha))));
        // PyTorch's SELU constants are ONNX's defaults; written out so the graph does not depend on them.
        Add<SELU>(add, (_, g, x) => g.Node("Selu", [x], Attributes(("alpha", 1.6732632423543772), ("gamma", 1.0507009873554805))));
        Add<Mish>(add, (_, g, x) => g.Opset >= 18 ? g.Node("Mish", [x]) : g.Node("Mul", [x, g.Node("Tanh", [g.Node("Softplus", [x])])]));
        Add<Hardsigmoid>(add, (_, g, x) => HardSigmoid(g, x));
        // HardSwish arrived in opset 14.
        Add<Hardswish>(add, (_, g, x) => g.Opset >= 14 ? g.Node("HardSwish", [x]) : g.Node("Mul", [x, HardSigmoid(g, x)]));
        Add<PReLU>(add, PRelu);
        // Eval mode: RReLU is a leaky ReLU with the mean of its slope range.
        Add<RReLU>(add, (m, g, x) => g.Node("LeakyRelu", [x], Attributes(("alpha", (m.lower + m.upper) / 2))));
        Add<Softplus>(add, Softplus);
        Add<Softsign>(add, (_, g, x) => g.Node("Softsign", [x]));
        Add<LogSigmoid>(add, (_, g, x) => g.Node("Neg", [g.Node("Softplus", [g.Node("Neg", [x])])]));
        Add<Tanhshrink>(add, (_, g, x) => g.Node("Sub", [x, g.Node("Tanh", [x])]));
        Add<Softshrink>(add, (m, g, x) => g.Node("Shrink", [x], Attributes(("lambd", m.lambda), ("bias", m.lambda))));
        Add<Hardshrink>(add, (m, g, x) => g.Node("Shrink", [x], Attributes(("lambd", m.lambda), ("bias", 0.0))));
        Add<Threshold>(add, (m, g, x) =>
            g.Node("Where", [g.Node("Greater", [x, g.Scalar(m.threshold, x)]), x, g.Scalar(m.value, x)]));
        Add<GLU>(add, Glu);
    }

    private static OnnxValue Hardtanh(Hardtanh hardtanh, OnnxGraph g, OnnxValue x)
    {
        // TorchSharp 0.107's Hardtanh module returns its input unchanged; the export follows what the layer computes.
        using var probe = tensor(new[] { hardtanh.min_val - 1, hardtanh.max_val + 1 }, x.ElementType);
        using var result = hardtanh.forward(probe);
        return result.allclose(probe) ? x : Clip(g, x, hardtanh.min_val, hardtanh.max_val);
    }

    private static OnnxValue Clip(OnnxGraph g, OnnxValue x, double min, double max) =>
        g.Node("Clip", [x, g.Scalar(min, x), g.Scalar(max, x)]);

    // PyTorch's hardsigmoid is relu6(x + 3) / 6.
    private static OnnxValue HardSigmoid(OnnxGraph g, OnnxValue x) =>
        g.Node("HardSigmoid", [x], Attributes(("alpha", 1.0 / 6), ("beta", 0.5)));

    private static OnnxValue PRelu(PReLU prelu, OnnxGraph g, OnnxValue x)
    {
        // One slope per channel (axis 1), broadcast over the axes after it.
        Tensor slope = prelu.weight;
        if (prelu.num_parameters > 1)
        {
            RequireRank(g, x, "PReLU", "[batch, channels, …]", Enumerable.Range(2, 4).ToArray());
            slope = slope.reshape([prelu.num_parameters, .. Enumerable.Repeat(1L, x.Rank - 2)]);
        }
        return g.Node("PRelu", [x, g.Initializer(slope, "weight")]);
    }

    private static OnnxValue Softplus(Softplus softplus, OnnxGraph g, OnnxValue x)
    {
        // PyTorch: log(1 + exp(βx)) / β, and x itself where βx exceeds the threshold.
        var scaled = softplus.beta == 1 ? x : g.Node("Mul", [x, g.Scalar(softplus.beta, x)]);
        var smooth = g.Node("Softplus", [scaled]);
        if (softplus.beta != 1) smooth = g.Node("Div", [smooth, g.Scalar(softplus.beta, x)]);
        return g.Node("Where", [g.Node("Greater", [scaled, g.Scalar(softplus.threshold, x)]), x, smooth]);
    }

    private static OnnxValue Glu(GLU glu, OnnxGraph g, OnnxValue x)
    {
        long axis = glu.dim < 0 ? glu.dim + x.Rank : glu.dim;
        if (x.Shape[(int)axis] is not { } size || size % 2 != 0)
            throw new ArgumentException(
                $"GLU {OnnxGraph.DisplayPath(g.ModulePath)} halves axis {glu.dim} of {x.ShapeText}; that axis must have a fixed, even size " +
                "(leave it out of OnnxExportOptions.DynamicAxes).", "inputSample");
        var first = g.Node("Slice", [x, g.Constant(0), g.Constant(size / 2), g.Constant(axis)]);
        var second = g.Node("Slice", [x, g.Constant(size / 2), g.Constant(size), g.Constant(axis)]);
        return g.Node("Mul", [first, g.Node("Sigmoid", [second])]);
    }

    /// <summary>GELU, exact or with the tanh approximation: the Gelu op from opset 20, PyTorch's formula before it.</summary>
    internal static OnnxValue Gelu(OnnxGraph g, OnnxValue x, bool tanh, ScalarType type)
    {
        if (g.Opset >= 20)
            return g.Node("Gelu", [x], Attributes(("approximate", tanh ? "tanh" : "none")));

        // Before opset 20, PyTorch's formulas: x·½·(1 + erf(x/√2)), or x·½·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
        OnnxValue inner;
        if (tanh)
        {
            var cube = g.Node("Mul", [x, g.Node("Mul", [x, x])]);
            var sum = g.Node("Add", [x, g.Node("Mul", [cube, g.Scalar(0.044715, type)])]);
            inner = g.Node("Tanh", [g.Node("Mul", [sum, g.Scalar(Math.Sqrt(2 / Math.PI), type)])]);
        }
        else
        {
            inner = g.Node("Erf", [g.Node("Mul", [x, g.Scalar(1 / Math.Sqrt(2), type)])]);
        }
        var half = g.Node("Mul", [x, g.Scalar(0.5, type)]);
        return g.Node("Mul", [half, g.Node("Add", [inner, g.Scalar(1, type)])]);
    }
}
