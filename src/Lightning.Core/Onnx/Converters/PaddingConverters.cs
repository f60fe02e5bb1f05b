using TorchSharp;
using TorchSharp.Modules;
using static Lightning.Onnx.Converters.LayerConverters;
using static TorchSharp.torch;

namespace Lightning.Onnx.Converters;

/// <summary>The padding layers (constant, zero, reflection, replication) and the padding of convolutions with a padding mode.</summary>
internal static class PaddingConverters
{
    public static void Register(Action<Type, OnnxConverter<nn.Module>> add)
    {
        foreach (var type in new[] { typeof(ConstantPad1d), typeof(ConstantPad2d), typeof(ConstantPad3d), typeof(ZeroPad2d) })
            add(type, (m, g, inputs) => [Pad(g, Single(m, g, inputs), ((PadBase)m).padding, PaddingModes.Constant, ((PadBase)m).value)]);
        foreach (var type in new[] { typeof(ReflectionPad1d), typeof(ReflectionPad2d), typeof(ReflectionPad3d) })
            add(type, (m, g, inputs) => [Pad(g, Single(m, g, inputs), ((PadBase)m).padding, PaddingModes.Reflect, 0)]);
        foreach (var type in new[] { typeof(ReplicationPad1d), typeof(ReplicationPad2d), typeof(ReplicationPad3d) })
            add(type, (m, g, inputs) => [Pad(g, Single(m, g, inputs), ((PadBase)m).padding, PaddingModes.Replicate, 0)]);
    }

    private static OnnxValue Single(nn.Module m, OnnxGraph g, IReadOnlyList<OnnxValue> inputs) => inputs.Count == 1 ? inputs[0]
        : throw new ArgumentException($"{m.GetType().Name} {OnnxGraph.DisplayPath(g.ModulePath)} takes one input; it was called with {inputs.Count}.", nameof(inputs));

    /// <summary>
    /// Pads with PyTorch's <c>F.pad</c> order (last axis first: left, right, then top, bottom, …). Circular padding is
    /// written as slices and concatenations, since ONNX Pad's "wrap" mode needs opset 19.
    /// </summary>
    internal static OnnxValue Pad(OnnxGraph g, OnnxValue x, long[] padding, PaddingModes mode, double value)
    {
        int rank = x.Rank, axes = padding.Length / 2;
        if (padding.Length % 2 != 0 || axes > rank)
            throw new ArgumentException(
                $"{OnnxGraph.DisplayPath(g.ModulePath)} pads with [{string.Join(", ", padding)}]: that needs pairs for at most {rank} axes.", "inputSample");
        if (mode == PaddingModes.Circular)
        {
            for (int i = 0; i < axes; i++)
            {
                long axis = rank - 1 - i, before = padding[2 * i], after = padding[2 * i + 1];
                var parts = new List<OnnxValue>();
                if (before > 0) parts.Add(g.Node("Slice", [x, g.Constant(-before), g.Constant(long.MaxValue), g.Constant(axis)]));
                parts.Add(x);
                if (after > 0) parts.Add(g.Node("Slice", [x, g.Constant(0), g.Constant(after), g.Constant(axis)]));
                if (parts.Count > 1) x = g.Node("Concat", parts, Attributes(("axis", axis)));
            }
            return x;
        }
        var pads = new long[2 * rank];
        for (int i = 0; i < axes; i++)
        {
            pads[rank - 1 - i] = padding[2 * i];
            pads[2 * rank - 1 - i] = padding[2 * i + 1];
        }
        var onnxMode = mode switch
        {
            PaddingModes.Reflect => "reflect",
            PaddingModes.Replicate => "edge",
            _ => "constant",
        };
        return g.Node("Pad", [x, g.Constant(pads), onnxMode == "constant" ? g.Scalar(value, x.ElementType) : null], Attributes(("mode", onnxMode)));
    }
}
