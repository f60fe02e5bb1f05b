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
