using TorchSharp.Modules;
using static Lightning.Onnx.Converters.LayerConverters;
using static TorchSharp.torch;

namespace Lightning.Onnx.Converters;

/// <summary>Max, average, adaptive and power-average pooling in 1-D, 2-D and 3-D.</summary>
internal static class PoolingConverters
{
    public static void Register(Action<Type, OnnxConverter<nn.Module>> add)
    {
        Add<MaxPool1d>(add, (m, g, x) => MaxPool(g, x, "MaxPool1d", 1, [m.kernel_size], One(m.stride), One(m.padding), One(m.dilation), m.ceil_mode));
        Add<MaxPool2d>(add, (m, g, x) => MaxPool(g, x, "MaxPool2d", 2, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode));
        Add<MaxPool3d>(add, (m, g, x) => MaxPool(g, x, "MaxPool3d", 3, m.kernel_size, m.stride, m.padding, m.dilation, m.ceil_mode));
        Add<AvgPool1d>(add, (m, g, x) => AvgPool(g, x, "AvgPool1d", 1, [m.kernel_size], One(m.stride), One(m.padding), m.ceil_mode, m.count_include_pad, null));
        Add<AvgPool2d>(add, (m, g, x) => AvgPool(g, x, "AvgPool2d", 2, m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad, m.divisor_override));
        Add<AvgPool3d>(add, (m, g, x) => AvgPool(g, x, "AvgPool3d", 3, m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad, m.divisor_override));
        Add<AdaptiveAvgPool1d>(add, (m, g, x) => Adaptive(g, x, m, 1, max: false));
        Add<AdaptiveAvgPool2d>(add, (m, g, x) => Adaptive(g, x, m, 2, max: false));
        Add<AdaptiveAvgPool3d>(add, (m, g, x) => Adaptive(g, x, m, 3, max: false));
        Add<AdaptiveMaxPool1d>(add, (m, g, x) => Adaptive(g, x, m, 1, max: true));
        Add<AdaptiveMaxPool2d>(add, (m, g, x) => Adaptive(g, x, m, 2, max: true));
        Add<AdaptiveMaxPool3d>(add, (m, g, x) => Adaptive(g, x, m, 3, max: true));
        Add<LPPool1d>(add, (m, g, x) => LpPool(g, x, "LPPool1d", 1, m.norm_type, [m.kernel_size], One(m.stride), m.ceil_mode));
        Add<LPPool2d>(add, (m, g, x) => LpPool(g, x, "LPPool2d", 2, m.norm_type, m.kernel_size, m.stride, m.ceil_mode));
    }

    private static long[]? One(long? value) => value is { } v ? [v] : null;

    private static void RequireSpatial(OnnxGraph g, OnnxValue x, string layer, int dims) =>
        RequireRank(g, x, layer, dims switch
        {
            1 => "[batch, channels, length]",
            2 => "[batch, channels, height, width]",
            _ => "[batch, channels, depth, height, width]",
        }, dims + 2);

    private static OnnxValue MaxPool(OnnxGraph g, OnnxValue x, string layer, int dims, long[] kernel, long[]? stride, long[]? padding,
        long[]? dilation, bool ceilMode)
    {
        RequireSpatial(g, x, layer, dims);
        kernel = Expand(kernel, dims, 1);
        var pads = Expand(padding, dims, 0);
        return g.Node("MaxPool", [x], Attributes(("kernel_shape", kernel), ("strides", Expand(stride is null or [] ? kernel : stride, dims, 1)),
            ("pads", (long[])[.. pads, .. pads]), ("dilations", Expand(dilation, dims, 1)), ("ceil_mode", ceilMode)));
    }

    private static OnnxValue AvgPool(OnnxGraph g, OnnxValue x, string layer, int dims, long[] kernel, long[]? stride, long[]? padding,
        bool ceilMode, bool countIncludePad, long? divisorOverride)
    {
        RequireSpatial(g, x, layer, dims);
        if (divisorOverride is not null)
            throw new NotSupportedException(
                $"{layer} {OnnxGraph.DisplayPath(g.ModulePath)} sets divisor_override = {divisorOverride}, which ONNX AveragePool cannot express; leave it unset.");
        kernel = Expand(kernel, dims, 1);
        var pads = Expand(padding, dims, 0);
        return g.Node("AveragePool", [x], Attributes(("kernel_shape", kernel), ("strides", Expand(stride is null or [] ? kernel : stride, dims, 1)),
            ("pads", (long[])[.. pads, .. pads]), ("ceil_mode", ceilMode), ("count_include_pad", countIncludePad)));
    }

    private static OnnxValue Adaptive(OnnxGraph g, OnnxValue x, nn.Module<Tensor, Tensor> pool, int dims, bool max)
    {
        var layer = pool.GetType().Name;
        RequireSpatial(g, x, layer, dims);
        // The output size as the layer computes it: TorchSharp does not keep every form of it in a field.
        var output = g.Evaluate(s => pool.forward(s[0]), [x]).Sample.shape.Skip(2).ToArray();
        if (output.All(o => o == 1))
            return g.Node(max ? "GlobalMaxPool" : "GlobalAveragePool", [x]);
        // Other sizes are a plain pool when the input size is fixed and divisible, as in PyTorch's exporter.
        var input = x.Shape.Skip(2).ToArray();
        if (input.Any(s => s is null) || input.Select((s, i) => s!.Value % output[i]).Any(r => r != 0))
            throw new NotSupportedException(
                $"{layer} {OnnxGraph.DisplayPath(g.ModulePath)} pools {x.ShapeText} to [{string.Join(", ", output)}]; ONNX has no adaptive pooling, " +
                "so the exporter supports output size 1, or fixed input sizes divisible by the output size.");
        var kernel = input.Select((s, i) => s!.Value / output[i]).ToArray();
        return g.Node(max ? "MaxPool" : "AveragePool", [x], Attributes(("kernel_shape", kernel), ("strides", kernel)));
    }

    private static OnnxValue LpPool(OnnxGraph g, OnnxValue x, string layer, int dims, double norm, long[] kernel, long[]? stride, bool ceilMode)
    {
        RequireSpatial(g, x, layer, dims);
        if (norm <= 0)
            throw new NotSupportedException($"{layer} {OnnxGraph.DisplayPath(g.ModulePath)} has norm_type = {norm}; it must be positive.");
        kernel = Expand(kernel, dims, 1);
        // PyTorch's formula rather than ONNX LpPool, which takes |x|: (Σ xᵖ over the window)^(1/p), the sum being an
        // average pool times the window size. It agrees for odd and fractional p (NaN where the sum is negative) and ceil_mode.
        var powered = g.Node("Pow", [x, g.Scalar(norm, x)]);
        var average = g.Node("AveragePool", [powered], Attributes(("kernel_shape", kernel),
            ("strides", Expand(stride is null or [] ? kernel : stride, dims, 1)), ("ceil_mode", ceilMode), ("count_include_pad", false)));
        var sum = g.Node("Mul", [average, g.Scalar(kernel.Aggregate(1L, (a, b) => a * b), x)]);
        return g.Node("Pow", [sum, g.Scalar(1 / norm, x)]);
    }
}
