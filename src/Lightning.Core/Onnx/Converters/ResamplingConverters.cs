using TorchSharp;
using TorchSharp.Modules;
using static Lightning.Onnx.Converters.LayerConverters;
using static TorchSharp.torch;

namespace Lightning.Onnx.Converters;

/// <summary>Upsampling (ONNX Resize) and the channel rearrangements: pixel shuffle and unshuffle, channel shuffle.</summary>
internal static class ResamplingConverters
{
    public static void Register(Action<Type, OnnxConverter<nn.Module>> add)
    {
        Add<Upsample>(add, Upsample);
        Add<PixelShuffle>(add, (m, g, x) =>
        {
            RequireRank(g, x, "PixelShuffle", "[batch, channels, height, width]", 4);
            // CRD ordering is PyTorch's: channel c·r² + i·r + j goes to offset (i, j) of output channel c.
            return g.Node("DepthToSpace", [x], Attributes(("blocksize", m.upscale_factor), ("mode", "CRD")));
        });
        // ONNX SpaceToDepth orders channels the other way round, so unshuffle is a reshape, transpose and reshape.
        Add<PixelUnshuffle>(add, (m, g, x) =>
        {
            RequireRank(g, x, "PixelUnshuffle", "[batch, channels, height, width]", 4);
            long r = m.downscale_factor;
            var blocks = g.ReshapeLike(x, t => t.reshape(t.size(0), t.size(1), t.size(2) / r, r, t.size(3) / r, r));
            var moved = g.Node("Transpose", [blocks], Attributes(("perm", new long[] { 0, 1, 3, 5, 2, 4 })));
            var (sample, probe) = g.Evaluate(s => s[0].permute(0, 1, 3, 5, 2, 4), [blocks]);
            moved.SetSamples(sample, probe);
            return g.ReshapeLike(moved, t => t.reshape(t.size(0), t.size(1) * r * r, t.size(4), t.size(5)));
        });
        Add<ChannelShuffle>(add, (m, g, x) =>
        {
            long groups = m.groups;
            var split = g.ReshapeLike(x, t => t.reshape([t.size(0), groups, t.size(1) / groups, .. t.shape.Skip(2)]));
            long[] perm = [0, 2, 1, .. Enumerable.Range(3, x.Rank - 2).Select(i => (long)i)];
            var moved = g.Node("Transpose", [split], Attributes(("perm", perm)));
            var (sample, probe) = g.Evaluate(s => s[0].permute(perm), [split]);
            moved.SetSamples(sample, probe);
            return g.ReshapeLike(moved, t => t.reshape([t.size(0), t.size(1) * t.size(2), .. t.shape.Skip(3)]));
        });
    }

    private static OnnxValue Upsample(Upsample up, OnnxGraph g, OnnxValue x)
    {
        int dims = x.Rank - 2;
        if (dims < 1)
            throw new ArgumentException($"Upsample {OnnxGraph.DisplayPath(g.ModulePath)} takes [batch, channels, …spatial]; it gets {x.ShapeText}.", "inputSample");
        var (mode, coordinates) = up.mode switch
        {
            UpsampleMode.Nearest => ("nearest", "asymmetric"),
            UpsampleMode.Bicubic => ("cubic", up.align_corners == true ? "align_corners" : "half_pixel"),
            _ => ("linear", up.align_corners == true ? "align_corners" : "pytorch_half_pixel"),
        };
        var attributes = Attributes(("mode", mode), ("coordinate_transformation_mode", coordinates));
        if (mode == "nearest") attributes["nearest_mode"] = "floor";
        if (mode == "cubic") attributes["cubic_coeff_a"] = -0.75;

        var scales = up.scale_factor.ToArray();
        var size = up.size.ToArray();
        if (scales.Length > 0 && up.recompute_scale_factor == true)
        {
            // The coordinates then follow output size / input size, which is Resize by sizes: fixed spatial sizes only.
            var factors = scales.Length == 1 ? Enumerable.Repeat(scales[0], dims).ToArray() : scales;
            var spatial = x.Shape.Skip(2).ToArray();
            if (spatial.Any(d => d is null))
                throw new ArgumentException(
                    $"Upsample {OnnxGraph.DisplayPath(g.ModulePath)} sets recompute_scale_factor, so its output size is needed at export; the spatial axes of " +
                    $"{x.ShapeText} must be fixed (leave them out of OnnxExportOptions.DynamicAxes), or leave recompute_scale_factor unset.", "inputSample");
            size = [.. spatial.Select((d, i) => (long)Math.Floor(d!.Value * factors[i]))];
        }
        else if (scales.Length > 0)
        {
            var factors = scales.Length == 1 ? Enumerable.Repeat(scales[0], dims).ToArray() : scales;
            var all = new float[] { 1, 1 }.Concat(factors.Select(f => (float)f)).ToArray();
            return g.Node("Resize", [x, null, g.Initializer(tensor(all), "scales")], attributes);
        }
        var target = size.Length == 1 ? Enumerable.Repeat(size[0], dims).ToArray() : size;
        // Batch and channels from the input at run time; the spatial sizes fixed.
        var sizes = g.Node("Concat", [g.Node("Slice", [g.Node("Shape", [x]), g.Constant(0), g.Constant(2), g.Constant(0)]), g.Constant(target)],
            Attributes(("axis", 0L)));
        return g.Node("Resize", [x, null, null, sizes], attributes);
    }
}
