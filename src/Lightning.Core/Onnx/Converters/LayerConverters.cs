using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lightning.Onnx.Converters;

/// <summary>Converters for TorchSharp's containers, linear and bilinear, convolution, batch and layer normalization, dropout and shape layers.</summary>
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
        add(typeof(Bilinear), (m, g, inputs) => [Bilinear((Bilinear)m, g, inputs)]);
        Add<Convolution>(add, Convolution);
        Add<ConvolutionTranspose>(add, ConvolutionTranspose);
        Add<BatchNorm>(add, BatchNorm);
        Add<LayerNorm>(add, LayerNorm);
        // Eval mode: dropout passes its input through, so it adds no node.
        Add<Dropout>(add, (_, _, x) => x);
        Add<Dropout1d>(add, (_, _, x) => x);
        Add<Dropout2d>(add, (_, _, x) => x);
        Add<Dropout3d>(add, (_, _, x) => x);
        Add<AlphaDropout>(add, (_, _, x) => x);
        Add<FeatureAlphaDropout>(add, (_, _, x) => x);
        Add<Identity>(add, (_, _, x) => x);
        Add<Flatten>(add, Flatten);
        Add<Unflatten>(add, (m, g, x) => g.ReshapeLike(x, m.forward));
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

    /// <summary>Gives <paramref name="output"/> the shape of the layer's own forward on <paramref name="inputs"/> (for layers with several inputs).</summary>
    internal static OnnxValue WithSample(OnnxGraph g, OnnxValue output, IReadOnlyList<OnnxValue> inputs, Func<IReadOnlyList<Tensor>, Tensor> forward)
    {
        var (sample, probe) = g.Evaluate(forward, inputs);
        output.SetSamples(sample, probe);
        return output;
    }

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

    private static OnnxValue Bilinear(Bilinear bilinear, OnnxGraph g, IReadOnlyList<OnnxValue> inputs)
    {
        if (inputs.Count != 2)
            throw new ArgumentException(
                $"Bilinear {OnnxGraph.DisplayPath(g.ModulePath)} takes two inputs; it was called with {inputs.Count}.", nameof(inputs));
        // y = x1ᵀ A x2 + b for each output feature, over any leading axes.
        var y = g.Node("Einsum", [inputs[0], g.Initializer(bilinear.weight, "weight"), inputs[1]], Attributes(("equation", "...i,oij,...j->...o")));
        y = bilinear.bias is null ? y : g.Node("Add", [y, g.Initializer(bilinear.bias, "bias")]);
        return WithSample(g, y, inputs, s => bilinear.forward(s[0], s[1]));
    }

    private static OnnxValue Convolution(Convolution conv, OnnxGraph g, OnnxValue x)
    {
        int dims = conv.kernel_size.Length;
        RequireRank(g, x, conv.GetType().Name, dims switch
        {
            1 => "[batch, channels, length]",
            2 => "[batch, channels, height, width]",
            _ => "[batch, channels, depth, height, width]",
        }, dims + 2);
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
        if (conv.padding_mode is not (PaddingModes.Zeros or PaddingModes.Constant) && (begin.Any(p => p > 0) || end.Any(p => p > 0)))
        {
            // Reflect, replicate and circular padding happen before a convolution that pads no more.
            var torchOrder = Enumerable.Range(0, dims).Reverse().SelectMany(i => new[] { begin[i], end[i] }).ToArray();
            x = PaddingConverters.Pad(g, x, torchOrder, conv.padding_mode, 0);
            begin = end = new long[dims];
        }
        return g.Node("Conv", [x, g.Initializer(conv.weight, "weight"), conv.bias is null ? null : g.Initializer(conv.bias, "bias")],
            Attributes(("kernel_shape", kernel), ("strides", Expand(conv.stride, dims, 1)), ("pads", (long[])[.. begin, .. end]),
                ("dilations", dilation), ("group", conv.groups)));
    }

    private static OnnxValue ConvolutionTranspose(ConvolutionTranspose conv, OnnxGraph g, OnnxValue x)
    {
        int dims = conv.kernel_size.Length;
        RequireRank(g, x, conv.GetType().Name, "[batch, channels, …spatial]", dims + 2);
        var padding = Expand(conv.padding, dims, 0);
        // The weight is [in, out / groups, kernel…] in both PyTorch and ONNX.
        return g.Node("ConvTranspose", [x, g.Initializer(conv.weight, "weight"), conv.bias is null ? null : g.Initializer(conv.bias, "bias")],
            Attributes(("kernel_shape", conv.kernel_size), ("strides", Expand(conv.stride, dims, 1)), ("pads", (long[])[.. padding, .. padding]),
                ("dilations", Expand(conv.dilation, dims, 1)), ("group", conv.groups), ("output_padding", Expand(conv.output_padding, dims, 0))));
    }

    internal static OnnxValue BatchNorm(NormBase norm, OnnxGraph g, OnnxValue x)
    {
        var type = norm.GetType().Name;
        if (norm is BatchNorm1d) RequireRank(g, x, type, "[batch, features] or [batch, channels, length]", 2, 3);
        else if (norm is BatchNorm2d) RequireRank(g, x, type, "[batch, channels, height, width]", 4);
        else if (norm is BatchNorm3d) RequireRank(g, x, type, "[batch, channels, depth, height, width]", 5);
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

    internal static long[] Expand(long[]? values, int dims, long fallback) => values switch
    {
        null or [] => [.. Enumerable.Repeat(fallback, dims)],
        [var single] => [.. Enumerable.Repeat(single, dims)],
        _ => values,
    };
}
