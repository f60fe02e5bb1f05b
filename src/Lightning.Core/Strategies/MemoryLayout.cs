using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lightning.Strategies;

/// <summary>
/// The memory formats of <see cref="TrainerOptions.MemoryFormat"/> (PyTorch's <c>memory_format</c>): re-striding batches
/// and module weights, making optimizer state contiguous for saving, and explaining a <c>.view</c> that the layout broke.
/// The strategy calls it; nothing else decides layouts.
/// </summary>
/// <remarks>
/// On the CPU, oneDNN runs a convolution channels-last when its input or its weight is channels-last, and its output then
/// stays channels-last through batch norm, activations and pooling. Contiguous (NCHW) tensors are reordered around every
/// convolution instead, and libtorch's NCHW max-pool kernel is scalar.
/// </remarks>
internal static class MemoryLayout
{
    public const string Contiguous = "contiguous_format";
    public const string ChannelsLast = "channels_last";
    public const string ChannelsLast3d = "channels_last_3d";

    private const string ViewFailure = "view size is not compatible with input tensor's size and stride";

    /// <summary>Fails naming <paramref name="option"/>, the value and the allowed ones unless <paramref name="value"/> is a memory format.</summary>
    public static void Validate(string option, string? value)
    {
        if (value is not (Contiguous or ChannelsLast or ChannelsLast3d))
            throw new ArgumentOutOfRangeException(option, value,
                $"{option} = {(value is null ? "null" : $"\"{value}\"")} is not allowed: use \"{Contiguous}\" (default), \"{ChannelsLast}\" " +
                $"(4-D tensors as NHWC) or \"{ChannelsLast3d}\" (5-D tensors as NDHWC).");
    }

    /// <summary>The rank of the tensors <paramref name="format"/> applies to; 0 for none.</summary>
    private static int RankOf(string format) => format switch
    {
        ChannelsLast => 4,
        ChannelsLast3d => 5,
        _ => 0,
    };

    /// <summary>
    /// <paramref name="tensor"/> with channels-last strides when it is floating and of the format's rank: the same
    /// tensor when already so, a view when the channels are 1 (the data's order is then the same), else a copy.
    /// </summary>
    public static Tensor Apply(Tensor tensor, string format)
    {
        var rank = RankOf(format);
        if (rank == 0 || tensor.dim() != rank || !tensor.is_floating_point()) return tensor;
        var shape = tensor.shape;
        var strides = ChannelsLastStrides(shape);
        if (tensor.stride().SequenceEqual(strides)) return tensor;
        if (shape[1] == 1 && tensor.is_contiguous()) return tensor.as_strided(shape, strides, tensor.storage_offset());
        // copy_ is differentiable, so an input that requires grad keeps its graph.
        return empty_strided(shape, strides, tensor.dtype, tensor.device).copy_(tensor);
    }

    /// <summary>
    /// Re-strides <paramref name="module"/>'s floating parameters and buffers of the format's rank (convolution weights)
    /// in place, as PyTorch's <c>module.to(memory_format=...)</c>: the parameter objects stay the same, so optimizers and
    /// fields that hold them see the new layout.
    /// </summary>
    public static void ApplyToModule(nn.Module module, string format)
    {
        if (RankOf(format) == 0) return;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        foreach (var tensor in module.parameters().Cast<Tensor>().Concat(module.buffers()))
        {
            var restrided = Apply(tensor, format);
            if (!ReferenceEquals(restrided, tensor)) tensor.set_(restrided);
        }
    }

    /// <summary>
    /// Until disposed, the optimizer's non-contiguous state tensors (Adam's moments of channels-last weights, say) are
    /// replaced by contiguous copies, so that TorchSharp's <c>save_state_dict</c>, which writes raw bytes and refuses
    /// non-contiguous tensors, can save them. The live state is put back on disposal.
    /// </summary>
    public static IDisposable ContiguousState(OptimizerHelper optimizer)
    {
        var swapped = NonContiguousState(optimizer);
        foreach (var (state, field, tensor) in swapped) field.SetValue(state, tensor.contiguous().DetachFromDisposeScope());
        return new Restore(swapped);
    }

    /// <summary>
    /// Replaces the optimizer's non-contiguous state tensors by contiguous copies for good, so that TorchSharp's
    /// <c>load_state_dict</c>, which reads raw bytes into them, can fill them. The optimizer's elementwise updates work
    /// on any layout.
    /// </summary>
    public static void MakeStateContiguous(OptimizerHelper optimizer)
    {
        foreach (var (state, field, tensor) in NonContiguousState(optimizer))
        {
            field.SetValue(state, tensor.contiguous().DetachFromDisposeScope());
            tensor.Dispose();
        }
    }

    private static List<(object State, System.Reflection.FieldInfo Field, Tensor Tensor)> NonContiguousState(OptimizerHelper optimizer) =>
        // TorchSharp's optimizer states keep their tensors in public fields (Adam.State.exp_avg, SGD.State.momentum_buffer, ...).
        [.. from state in optimizer.state_dict().State
            from field in state.GetType().GetFields()
            where field.FieldType == typeof(Tensor)
            let tensor = field.GetValue(state) as Tensor
            where tensor is { IsInvalid: false } && !tensor.is_contiguous()
            select ((object)state, field, tensor)];

    /// <summary>
    /// The exception to surface for <paramref name="exception"/>: where libtorch refused a <c>.view</c> while a
    /// channels-last format is on, one that says how to fix it (with the original inside); else null.
    /// </summary>
    public static Exception? ExplainViewFailure(Exception exception, string format, string option)
    {
        if (RankOf(format) == 0 || FindViewFailure(exception) is not { } failure) return null;
        return new InvalidOperationException(
            $"A .view(...) failed on a tensor that is not contiguous: {option} = \"{format}\" keeps convolution activations " +
            $"{format} in memory, so a view cannot flatten or regroup them. Use .reshape(...) or .flatten(...) there " +
            $"(they copy only when needed), or set {option} = \"{Contiguous}\". libtorch said: {FirstLine(failure.Message)}", exception);
    }

    private static Exception? FindViewFailure(Exception exception) => exception switch
    {
        _ when exception.Message.Contains(ViewFailure, StringComparison.Ordinal) => exception,
        AggregateException aggregate => aggregate.InnerExceptions.Select(FindViewFailure).FirstOrDefault(e => e is not null),
        { InnerException: { } inner } => FindViewFailure(inner),
        _ => null,
    };

    private static string FirstLine(string message) => message.Split('\n', 2)[0].Trim();

    /// <summary>Channels-last strides of an N, C, spatial... shape: C varies fastest, then the spatial dimensions, then N.</summary>
    private static long[] ChannelsLastStrides(long[] shape)
    {
        var strides = new long[shape.Length];
        long stride = 1;
        strides[1] = stride;
        stride *= shape[1];
        for (int d = shape.Length - 1; d >= 2; d--)
        {
            strides[d] = stride;
            stride *= shape[d];
        }
        strides[0] = stride;
        return strides;
    }

    private sealed class Restore(List<(object State, System.Reflection.FieldInfo Field, Tensor Original)> swapped) : IDisposable
    {
        public void Dispose()
        {
            foreach (var (state, field, original) in swapped)
            {
                (field.GetValue(state) as Tensor)?.Dispose();
                field.SetValue(state, original);
            }
            swapped.Clear();
        }
    }
}
