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
        Add<GELU>(add, Gelu);
        // ONNX has Swish only from opset 24.
        Add<SiLU>(add, (_, g, x) => g.Node("Mul", [x, g.Node("Sigmoid", [x])]));
        Add<Sigmoid>(add, (_, g, x) => g.Node("Sigmoid", [x]));
        Add<Tanh>(add, (_, g, x) => g.Node("Tanh", [x]));
        Add<Softmax>(add, (m, g, x) => g.Node("Softmax", [x], Attributes(("axis", m.dim))));
        Add<LogSoftmax>(add, (m, g, x) => g.Node("LogSoftmax", [x], Attributes(("axis", m.dim))));
    }

    private static OnnxValue Gelu(GELU gelu, OnnxGraph g, OnnxValue x)
    {
        bool tanh = gelu.approximate == GELU.Approximate.tanh;
        if (g.Opset >= 20)
            return g.Node("Gelu", [x], Attributes(("approximate", tanh ? "tanh" : "none")));

        // Before opset 20, PyTorch's formulas: x·½·(1 + erf(x/√2)), or x·½·(1 + tanh(√(2/π)·(x + 0.044715·x³))).
        OnnxValue inner;
        if (tanh)
        {
            var cube = g.Node("Mul", [x, g.Node("Mul", [x, x])]);
            var sum = g.Node("Add", [x, g.Node("Mul", [cube, g.Scalar(0.044715, x)])]);
            inner = g.Node("Tanh", [g.Node("Mul", [sum, g.Scalar(Math.Sqrt(2 / Math.PI), x)])]);
        }
        else
        {
            inner = g.Node("Erf", [g.Node("Mul", [x, g.Scalar(1 / Math.Sqrt(2), x)])]);
        }
        var half = g.Node("Mul", [x, g.Scalar(0.5, x)]);
        return g.Node("Mul", [half, g.Node("Add", [inner, g.Scalar(1, x)])]);
    }
}
