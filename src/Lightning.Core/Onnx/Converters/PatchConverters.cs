using TorchSharp;
using TorchSharp.Modules;
using static Lightning.Onnx.Converters.LayerConverters;
using static TorchSharp.torch;

namespace Lightning.Onnx.Converters;

/// <summary>
/// Unfold (im2col) and Fold (col2im) as a grouped convolution and transposed convolution with one-hot kernels: each
/// of the kh·kw output channels of a group picks one kernel offset, in PyTorch's channel order c·kh·kw + i·kw + j.
/// This works at every opset (ONNX's Col2Im needs 18).
/// </summary>
internal static class PatchConverters
{
    public static void Register(Action<Type, OnnxConverter<nn.Module>> add)
    {
        Add<Unfold>(add, Unfold);
        Add<Fold>(add, Fold);
    }

    private static OnnxValue Unfold(Unfold unfold, OnnxGraph g, OnnxValue x)
    {
        RequireRank(g, x, "Unfold", "[batch, channels, height, width]", 4);
        var channels = x.Shape[1] ?? throw new ArgumentException(
            $"Unfold {OnnxGraph.DisplayPath(g.ModulePath)} needs a fixed channel count; axis 1 of {x.ShapeText} is dynamic.", "inputSample");
        var (kernel, dilation, padding, stride) = (Pair(unfold.kernel_size), Pair(unfold.dilation), Pair(unfold.padding), Pair(unfold.stride));
        var patches = g.Node("Conv", [x, g.Initializer(OneHot(kernel, channels, x.ElementType), "one_hot")],
            Attributes(("kernel_shape", kernel), ("strides", stride), ("pads", (long[])[.. padding, .. padding]), ("dilations", dilation), ("group", channels)));
        return g.Node("Reshape", [patches, g.Constant(0, channels * kernel[0] * kernel[1], -1)]);
    }

    private static OnnxValue Fold(Fold fold, OnnxGraph g, OnnxValue x)
    {
        RequireRank(g, x, "Fold", "[batch, channels·kernel, blocks]", 3);
        var (output, kernel, dilation, padding, stride) = (Pair(fold.output_size), Pair(fold.kernel_size), Pair(fold.dilation), Pair(fold.padding), Pair(fold.stride));
        long window = kernel[0] * kernel[1];
        if (x.Shape[1] is not { } columns || columns % window != 0)
            throw new ArgumentException(
                $"Fold {OnnxGraph.DisplayPath(g.ModulePath)} needs a fixed axis 1 divisible by the kernel size {window}; the input is {x.ShapeText}.", "inputSample");
        // Blocks per spatial axis, and the output padding that brings the transposed convolution to output_size.
        var blocks = new long[2];
        var extra = new long[2];
        for (int i = 0; i < 2; i++)
        {
            blocks[i] = (output[i] + 2 * padding[i] - dilation[i] * (kernel[i] - 1) - 1) / stride[i] + 1;
            extra[i] = output[i] - ((blocks[i] - 1) * stride[i] - 2 * padding[i] + dilation[i] * (kernel[i] - 1) + 1);
        }
        var grid = g.Node("Reshape", [x, g.Constant(0, columns, blocks[0], blocks[1])]);
        return g.Node("ConvTranspose", [grid, g.Initializer(OneHot(kernel, columns / window, x.ElementType), "one_hot")],
            Attributes(("kernel_shape", kernel), ("strides", stride), ("pads", (long[])[.. padding, .. padding]), ("dilations", dilation),
                ("group", columns / window), ("output_padding", extra)));
    }

    /// <summary>[channels·kh·kw, 1, kh, kw]: output channel c·kh·kw + k has a single 1 at kernel offset k.</summary>
    private static Tensor OneHot(long[] kernel, long channels, ScalarType type) =>
        eye(kernel[0] * kernel[1], dtype: type).reshape(kernel[0] * kernel[1], 1, kernel[0], kernel[1]).repeat(channels, 1, 1, 1);

    private static long[] Pair((long, long) value) => [value.Item1, value.Item2];
}
