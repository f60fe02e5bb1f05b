using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lightning.Onnx.Converters;

/// <summary>Converters for TorchSharp's containers, linear, convolution, normalization, shape, embedding and pooling layers.</summary>
internal static class LayerConverters
{
    public static void Register(Action<Type, OnnxConverter<nn.Module>> add)
    {
        Add<Sequential>(add, (seq, g, x) =>
        {
            foreach (var (_, child) in seq.named_children())
                x = g.Call(child, x)[0];
            return x;
        });
        Add<Linear>(add, Linear);
        Add<Convolution>(add, Convolution);
        Add<ConvolutionTranspose>(add, ConvolutionTranspose);
        Add<BatchNorm>(add, BatchNorm);
        Add<LayerNorm>(add, LayerNorm);
        // Eval mode: dropout passes its input through, so it adds no node.
        Add<Dropout>(add, (_, _, x) => x);
        Add<Dropout1d>(add, (_, _, x) => x);
        Add<Dropout2d>(add, (_, _, x) => x);
        Add<Identity>(add, (_, _, x) => x);
        Add<Flatten>(add, Flatten);
        Add<Unflatten>(add, (m, g, x) => g.ReshapeLike(x, m.forward));
        Add<Embedding>(add, Embedding);
        Add<MaxPool2d>(add, MaxPool2d);
        Add<AvgPool2d>(add, AvgPool2d);
        Add<AdaptiveAvgPool2d>(add, AdaptiveAvgPool2d);
    }

    /// <summary>Registers a converter of a single-input, single-output layer.</summary>
    internal static void Add<TModule>(Action<Type, OnnxConverter<nn.Module>> add, Func<TModule, OnnxGraph, OnnxValue, OnnxValue> convert)
        where TModule : nn.Module =>
        add(typeof(TModule), (module, graph, inputs) =>
        {
            if (inputs.Count != 1)
                throw new ArgumentException(
                    $"{typeof(TModule).Name} {OnnxGraph.DisplayPath(graph.ModulePath)} takes one input; it was called with {inputs.Count}.", nameof(inputs));
            return [convert((TModule)module, graph, inputs[0])];
        });

    internal static Dictionary<string, object> Attributes(params (string Name, object Value)[] attributes) =>
        attributes.ToDictionary(a => a.Name, a => a.Value);

    /// <summary>Layers that also accept unbatched input in TorchSharp are exported for batched input only, so the batch axis can be dynamic.</summary>
    internal static void RequireRank(OnnxGraph graph, OnnxValue x, string layer, string layout, params int[] ranks)
    {
        if (ranks.Contains(x.Rank)) return;
        throw new ArgumentException(
            $"{layer} {OnnxGraph.DisplayPath(graph.ModulePath)} expects a {string.Join(" or ", ranks.Select(r => $"{r}-D"))} input {layout}; " +
            $"it gets rank {x.Rank} (shape {x.ShapeText}). Give an input sample of that rank, batch axis first.", "inputSample");
    }

    private static OnnxValue Linear(Linear linear, OnnxGraph g, OnnxValue x)
    {
        var bias = linear.bias is null ? null : g.Initializer(linear.bias, "bias");
        if (x.Rank == 2)
            return g.Node("Gemm", [x, g.Initializer(linear.weight, "weight"), bias], Attributes(("transB", 1L)));
        // Gemm is 2-D only; other ranks multiply by the transposed weight and broadcast the bias.
        var y = g.Node("MatMul", [x, g.Initializer(linear.weight.t(), "weight_t")]);
        return bias is null ? y : g.Node("Add", [y, bias]);
    }

    private static OnnxValue Convolution(Convolution conv, OnnxGraph g, OnnxValue x)
    {
        int dims = conv.kernel_size.Length;
        RequireRank(g, x, conv.GetType().Name, dims == 1 ? "[batch, channels, length]" : "[batch, channels, height, width]", dims + 2);
        if (conv.padding_mode != PaddingModes.Zeros)
            throw new NotSupportedException(
                $"{conv.GetType().Name} {OnnxGraph.DisplayPath(g.ModulePath)} pads with {conv.padding_mode}; the exporter supports zero padding only.");
        var kernel = conv.kernel_size;
        var dilation = Expand(conv.dilation, dims, 1);
        long[] begin, end;
        if (conv.padding_type == Padding.Same)
        {
            // As PyTorch's "same": the odd one of the total padding goes to the end.
            var total = kernel.Select((k, i) => dilation[i] * (k - 1)).ToArray();
            begin = [.. total.Select(t => t / 2)];
            end = [.. total.Select((t, i) => t - begin[i])];
        }
        else
        {
            begin = end = Expand(conv.padding_type == Padding.Valid ? null : conv.padding, dims, 0);
        }
        return g.Node("Conv", [x, g.Initializer(conv.weight, "weight"), conv.bias is null ? null : g.Initializer(conv.bias, "bias")],
            Attributes(("kernel_shape", kernel), ("strides", Expand(conv.stride, dims, 1)), ("pads", (long[])[.. begin, .. end]),
                ("dilations", dilation), ("group", conv.groups)));
    }

    private static OnnxValue ConvolutionTranspose(ConvolutionTranspose conv, OnnxGraph g, OnnxValue x)
    {
        int dims = conv.kernel_size.Length;
        RequireRank(g, x, conv.GetType().Name, "[batch, channels, height, width]", dims + 2);
        var padding = Expand(conv.padding, dims, 0);
        // The weight is [in, out / groups, kernel…] in both PyTorch and ONNX.
        return g.Node("ConvTranspose", [x, g.Initializer(conv.weight, "weight"), conv.bias is null ? null : g.Initializer(conv.bias, "bias")],
            Attributes(("kernel_shape", conv.kernel_size), ("strides", Expand(conv.stride, dims, 1)), ("pads", (long[])[.. padding, .. padding]),
                ("dilations", Expand(conv.dilation, dims, 1)), ("group", conv.groups), ("output_padding", Expand(conv.output_padding, dims, 0))));
    }

    private static OnnxValue BatchNorm(BatchNorm norm, OnnxGraph g, OnnxValue x)
    {
        var type = norm.GetType().Name;
        if (norm is BatchNorm1d) RequireRank(g, x, type, "[batch, features] or [batch, channels, length]", 2, 3);
        else if (norm is BatchNorm2d) RequireRank(g, x, type, "[batch, channels, height, width]", 4);
        if (!norm.track_running_stats || norm.running_mean is null || norm.running_var is null)
            throw new NotSupportedException(
                $"{type} {OnnxGraph.DisplayPath(g.ModulePath)} has no running statistics (track_running_stats = false), so eval mode " +
                "normalizes with batch statistics; the exporter writes eval statistics only.");
        var features = norm.num_features;
        var scale = norm.weight is null ? g.Initializer(ones(features), "weight") : g.Initializer(norm.weight, "weight");
        var shift = norm.bias is null ? g.Initializer(zeros(features), "bias") : g.Initializer(norm.bias, "bias");
        return g.Node("BatchNormalization",
            [x, scale, shift, g.Initializer(norm.running_mean, "running_mean"), g.Initializer(norm.running_var, "running_var")],
            Attributes(("epsilon", norm.eps)));
    }

    private static OnnxValue LayerNorm(LayerNorm norm, OnnxGraph g, OnnxValue x)
    {
        var normalized = norm.normalized_shape;
        if (x.Rank < normalized.Length)
            throw new ArgumentException(
                $"LayerNorm {OnnxGraph.DisplayPath(g.ModulePath)} normalizes the last {normalized.Length} axes; its input has rank {x.Rank} ({x.ShapeText}).", "inputSample");
        var scale = norm.weight is null ? g.Initializer(ones(normalized), "weight") : g.Initializer(norm.weight, "weight");
        var shift = norm.bias is null ? null : g.Initializer(norm.bias, "bias");
        return LayerNormalization(g, x, scale, shift, normalized.Length, norm.eps, x.ElementType);
    }

    /// <summary>Normalizes the last <paramref name="axes"/> axes of <paramref name="x"/> and applies the affine transform, as <c>layer_norm</c>.</summary>
    internal static OnnxValue LayerNormalization(OnnxGraph g, OnnxValue x, OnnxValue scale, OnnxValue? shift, int axes, double eps, ScalarType type)
    {
        if (g.Opset >= 17)
            return g.Node("LayerNormalization", [x, scale, shift], Attributes(("axis", (long)-axes), ("epsilon", eps)));

        // LayerNormalization arrived in opset 17; before it, the same arithmetic in elementary ops.
        var last = Enumerable.Range(0, axes).Select(i => (long)(i - axes)).ToArray();
        var centered = g.Node("Sub", [x, g.Reduce("ReduceMean", x, last, keepDims: true)]);
        var variance = g.Reduce("ReduceMean", g.Node("Mul", [centered, centered]), last, keepDims: true);
        var y = g.Node("Div", [centered, g.Node("Sqrt", [g.Node("Add", [variance, g.Scalar(eps, type)])])]);
        y = g.Node("Mul", [y, scale]);
        return shift is null ? y : g.Node("Add", [y, shift]);
    }

    private static OnnxValue Flatten(Flatten flatten, OnnxGraph g, OnnxValue x)
    {
        int rank = x.Rank;
        long start = flatten.start_dim < 0 ? flatten.start_dim + rank : flatten.start_dim;
        long end = flatten.end_dim < 0 ? flatten.end_dim + rank : flatten.end_dim;
        if (start == end) return x;
        // ONNX Flatten always makes a matrix, which is torch's flatten from axis 1 (or 0) to the last axis.
        if (end == rank - 1 && start == 1)
            return g.Node("Flatten", [x], Attributes(("axis", 1L)));
        return g.ReshapeLike(x, flatten.forward);
    }

    private static OnnxValue Embedding(Embedding embedding, OnnxGraph g, OnnxValue x)
    {
        if (x.ElementType is not (ScalarType.Int64 or ScalarType.Int32))
            throw new ArgumentException(
                $"Embedding {OnnxGraph.DisplayPath(g.ModulePath)} takes integer indices; the input is {x.ElementType}.", "inputSample");
        return g.Node("Gather", [g.Initializer(embedding.weight!, "weight"), x], Attributes(("axis", 0L)));
    }

    private static OnnxValue MaxPool2d(MaxPool2d pool, OnnxGraph g, OnnxValue x)
    {
        RequireRank(g, x, "MaxPool2d", "[batch, channels, height, width]", 4);
        var padding = Expand(pool.padding, 2, 0);
        return g.Node("MaxPool", [x], Attributes(("kernel_shape", pool.kernel_size), ("strides", Expand(pool.stride ?? pool.kernel_size, 2, 1)),
            ("pads", (long[])[.. padding, .. padding]), ("dilations", Expand(pool.dilation, 2, 1)), ("ceil_mode", pool.ceil_mode)));
    }

    private static OnnxValue AvgPool2d(AvgPool2d pool, OnnxGraph g, OnnxValue x)
    {
        RequireRank(g, x, "AvgPool2d", "[batch, channels, height, width]", 4);
        if (pool.divisor_override is not null)
            throw new NotSupportedException(
                $"AvgPool2d {OnnxGraph.DisplayPath(g.ModulePath)} sets divisor_override, which ONNX AveragePool cannot express.");
        var padding = Expand(pool.padding, 2, 0);
        return g.Node("AveragePool", [x], Attributes(("kernel_shape", pool.kernel_size), ("strides", Expand(pool.stride ?? pool.kernel_size, 2, 1)),
            ("pads", (long[])[.. padding, .. padding]), ("ceil_mode", pool.ceil_mode), ("count_include_pad", pool.count_include_pad)));
    }

    private static OnnxValue AdaptiveAvgPool2d(AdaptiveAvgPool2d pool, OnnxGraph g, OnnxValue x)
    {
        RequireRank(g, x, "AdaptiveAvgPool2d", "[batch, channels, height, width]", 4);
        var output = Expand(pool.output_size, 2, 1);
        if (output is [1, 1])
            return g.Node("GlobalAveragePool", [x]);
        // Other sizes are a plain average pool when the input size is fixed and divisible, as PyTorch's exporter.
        var input = x.Shape.Skip(2).ToArray();
        if (input.Any(s => s is null) || input.Select((s, i) => s!.Value % output[i]).Any(r => r != 0))
            throw new NotSupportedException(
                $"AdaptiveAvgPool2d {OnnxGraph.DisplayPath(g.ModulePath)} pools {x.ShapeText} to [{string.Join(", ", output)}]; the exporter " +
                "supports output size 1×1, or fixed input sizes divisible by the output size.");
        var kernel = input.Select((s, i) => s!.Value / output[i]).ToArray();
        return g.Node("AveragePool", [x], Attributes(("kernel_shape", kernel), ("strides", kernel)));
    }

    private static long[] Expand(long[]? values, int dims, long fallback) => values switch
    {
        null or [] => [.. Enumerable.Repeat(fallback, dims)],
        [var single] => [.. Enumerable.Repeat(single, dims)],
        _ => values,
    };
}
