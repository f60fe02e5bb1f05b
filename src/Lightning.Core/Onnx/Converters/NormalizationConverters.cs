using TorchSharp.Modules;
using static Lightning.Onnx.Converters.LayerConverters;
using static TorchSharp.torch;

namespace Lightning.Onnx.Converters;

/// <summary>Instance, group and local response normalization (batch and layer normalization are in <see cref="LayerConverters"/>).</summary>
internal static class NormalizationConverters
{
    public static void Register(Action<Type, OnnxConverter<nn.Module>> add)
    {
        Add<InstanceNorm>(add, InstanceNorm);
        Add<GroupNorm>(add, GroupNorm);
        Add<LocalResponseNorm>(add, (m, g, x) =>
            g.Node("LRN", [x], Attributes(("size", m.size), ("alpha", m.alpha), ("beta", m.beta), ("bias", m.k))));
    }

    private static OnnxValue InstanceNorm(InstanceNorm norm, OnnxGraph g, OnnxValue x)
    {
        var type = norm.GetType().Name;
        int dims = norm switch { InstanceNorm1d => 1, InstanceNorm2d => 2, _ => 3 };
        RequireRank(g, x, type, "[batch, channels, …]", dims + 2);
        // With running statistics, eval mode normalizes with them, exactly as batch normalization does.
        if (norm.track_running_stats && norm.running_mean is not null)
            return BatchNorm(norm, g, x);
        var channels = x.Shape[1] ?? norm.num_features;
        var scale = norm.weight is null ? g.Initializer(ones(channels, x.ElementType), "weight") : g.Initializer(norm.weight, "weight");
        var shift = norm.bias is null ? g.Initializer(zeros(channels, x.ElementType), "bias") : g.Initializer(norm.bias, "bias");
        return g.Node("InstanceNormalization", [x, scale, shift], Attributes(("epsilon", norm.eps)));
    }

    private static OnnxValue GroupNorm(GroupNorm norm, OnnxGraph g, OnnxValue x)
    {
        RequireRank(g, x, "GroupNorm", "[batch, channels, …]", 2, 3, 4, 5);
        if (x.Shape[1] is not { } channels)
            throw new ArgumentException($"GroupNorm {OnnxGraph.DisplayPath(g.ModulePath)} needs a fixed channel count; axis 1 of {x.ShapeText} is dynamic.", "inputSample");
        var weight = norm.weight ?? ones(channels, x.ElementType);
        var bias = norm.bias ?? zeros(channels, x.ElementType);
        // Opset 18's GroupNormalization scaled per group (a spec error, fixed in 21); before 21, normalize the groups
        // as instances of [batch, groups, rest] and apply the per-channel affine transform afterwards.
        if (g.Opset >= 21)
            return g.Node("GroupNormalization", [x, g.Initializer(weight, "weight"), g.Initializer(bias, "bias")],
                Attributes(("num_groups", norm.num_groups), ("epsilon", norm.eps)));
        var groups = g.Node("Reshape", [x, g.Constant(0, norm.num_groups, -1)]);
        var normalized = g.Node("InstanceNormalization",
            [groups, g.Initializer(ones(norm.num_groups, x.ElementType), "group_scale"), g.Initializer(zeros(norm.num_groups, x.ElementType), "group_shift")],
            Attributes(("epsilon", norm.eps)));
        var y = g.Node("Reshape", [normalized, g.Node("Shape", [x])]);
        var perChannel = (long[])[channels, .. Enumerable.Repeat(1L, x.Rank - 2)];
        return g.Node("Add", [g.Node("Mul", [y, g.Initializer(weight.reshape(perChannel), "weight")]), g.Initializer(bias.reshape(perChannel), "bias")]);
    }
}
