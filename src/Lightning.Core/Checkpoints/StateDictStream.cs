using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Checkpoints;

/// <summary>
/// Writes and reads a module's state dict in TorchSharp's own format (what <c>module.save</c> writes and <c>module.load</c>
/// reads: an entry count, then per entry its name, dtype, shape and raw bytes), streaming each tensor through a bounded
/// buffer. TorchSharp's reader copies every tensor into a managed array first and refuses tensors past 2 GB; this one
/// reads straight into the tensor's memory, so a checkpoint of any size loads with little more than the module's memory.
/// </summary>
internal static class StateDictStream
{
    /// <summary>Tensors move in pieces of at most this many bytes (device and non-contiguous tensors through a staging copy of this size).</summary>
    internal const int ChunkBytes = 4 * 1024 * 1024;

    /// <summary>The bytes the module's state takes (parameters and persistent buffers).</summary>
    public static long SizeOf(nn.Module module) =>
        module.state_dict().Values.Sum(t => t.numel() * t.element_size());

    public static void Write(Stream stream, nn.Module module)
    {
        using var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
        var state = module.state_dict();
        WriteUnsigned(writer, state.Count);
        foreach (var (name, value) in state)
        {
            writer.Write(name);
            WriteTensor(writer, value);
        }
        writer.Flush();
    }

    private static void WriteTensor(BinaryWriter writer, Tensor tensor)
    {
        WriteUnsigned(writer, (long)tensor.dtype);
        WriteUnsigned(writer, tensor.shape.Length);
        foreach (var dim in tensor.shape) WriteUnsigned(writer, dim);
        writer.Flush();
        var stream = writer.BaseStream;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        // A non-contiguous tensor (channels-last weights) is written in its logical order, as TorchSharp would after contiguous().
        var flat = tensor.detach().contiguous().view(-1);
        var elementSize = (long)tensor.element_size();
        var perChunk = Math.Max(1, ChunkBytes / elementSize);
        var onCpu = flat.device_type == DeviceType.CPU;
        for (long start = 0; start < flat.numel(); start += perChunk)
        {
            using var inner = NewDisposeScope();
            var piece = flat.narrow(0, start, Math.Min(perChunk, flat.numel() - start));
            stream.Write((onCpu ? piece : piece.cpu()).bytes);
        }
    }

    /// <summary>
    /// Loads the entries into <paramref name="module"/>'s parameters and buffers in place. With <paramref name="strict"/>
    /// the names must match the module's exactly; dtypes and shapes must always match. <paramref name="source"/> names
    /// the file in errors.
    /// </summary>
    public static void Read(Stream stream, nn.Module module, bool strict, string source)
    {
        using var reader = new BinaryReader(stream, Encoding.UTF8, leaveOpen: true);
        var state = module.state_dict();
        var count = ReadUnsigned(reader, source);
        var loaded = new HashSet<string>(StringComparer.Ordinal);
        var unexpected = new List<string>();
        for (long i = 0; i < count; i++)
        {
            var name = reader.ReadString();
            var dtype = (ScalarType)ReadUnsigned(reader, source);
            var rank = ReadUnsigned(reader, source);
            if (rank > 64) throw Malformed(source, $"entry '{name}' claims {rank} dimensions");
            var shape = new long[rank];
            for (int d = 0; d < rank; d++) shape[d] = ReadUnsigned(reader, source);
            var bytes = checked(shape.Aggregate(1L, (a, b) => a * b) * ElementSize(dtype, name, source));
            if (!state.TryGetValue(name, out var target))
            {
                unexpected.Add(name);
                Skip(stream, bytes, source);
                continue;
            }
            if (target.dtype != dtype)
                throw new InvalidDataException(
                    $"{source}: entry '{name}' is {dtype} in the file but {target.dtype} in the module; load it into a module of the same dtype (cast after loading).");
            if (!shape.SequenceEqual(target.shape))
                throw new InvalidDataException(
                    $"{source}: entry '{name}' has shape [{string.Join(", ", shape)}] in the file but [{string.Join(", ", target.shape)}] in the module.");
            ReadInto(stream, target, bytes, source);
            loaded.Add(name);
        }
        if (!strict) return;
        var missing = state.Keys.Where(k => !loaded.Contains(k)).ToList();
        if (missing.Count > 0 || unexpected.Count > 0)
            throw new InvalidDataException(
                $"{source} does not match the module ({module.GetType().Name}): " +
                (missing.Count > 0 ? $"missing keys: {string.Join(", ", missing)}" : "") +
                (missing.Count > 0 && unexpected.Count > 0 ? "; " : "") +
                (unexpected.Count > 0 ? $"unexpected keys: {string.Join(", ", unexpected)}" : "") +
                ". Load it with strict: false to take only the keys both have.");
    }

    private static void ReadInto(Stream stream, Tensor target, long bytes, string source)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var elementSize = target.element_size();
        var perChunk = Math.Max(1, ChunkBytes / elementSize);
        var direct = target.device_type == DeviceType.CPU && target.is_contiguous();
        // Device and non-contiguous targets take the data through a CPU tensor: a chunk at a time where a flat view exists.
        var flat = direct ? target.detach().view(-1) : target.is_contiguous() ? target.detach().view(-1) : null;
        var whole = flat is null ? empty(target.shape, target.dtype) : null;
        var staging = flat is not null && !direct ? empty(new[] { Math.Min(perChunk, Math.Max(1, target.numel())) }, target.dtype) : null;
        var count = target.numel();
        for (long start = 0; start < count; start += perChunk)
        {
            using var inner = NewDisposeScope();
            var n = Math.Min(perChunk, count - start);
            if (direct) ReadExactly(stream, flat!.narrow(0, start, n).bytes, source);
            else if (staging is not null)
            {
                var piece = staging.narrow(0, 0, n);
                ReadExactly(stream, piece.bytes, source);
                flat!.narrow(0, start, n).copy_(piece);
            }
            else ReadExactly(stream, whole!.view(-1).narrow(0, start, n).bytes, source);
        }
        if (whole is not null) target.copy_(whole);
        if (count == 0 && bytes != 0) throw Malformed(source, "an empty tensor carries data");
    }

    private static void ReadExactly(Stream stream, Span<byte> into, string source)
    {
        try { stream.ReadExactly(into); }
        catch (EndOfStreamException) { throw Malformed(source, "it ends inside a tensor"); }
    }

    private static void Skip(Stream stream, long bytes, string source)
    {
        var buffer = new byte[(int)Math.Min(bytes, 81920)];
        while (bytes > 0)
        {
            var n = (int)Math.Min(bytes, buffer.Length);
            ReadExactly(stream, buffer.AsSpan(0, n), source);
            bytes -= n;
        }
    }

    private static long ElementSize(ScalarType dtype, string name, string source) => dtype switch
    {
        ScalarType.Byte or ScalarType.Int8 or ScalarType.Bool => 1,
        ScalarType.Int16 or ScalarType.Float16 or ScalarType.BFloat16 => 2,
        ScalarType.Int32 or ScalarType.Float32 => 4,
        ScalarType.Int64 or ScalarType.Float64 or ScalarType.ComplexFloat32 => 8,
        ScalarType.ComplexFloat64 => 16,
        _ => throw Malformed(source, $"entry '{name}' has the unknown dtype code {(int)dtype}"),
    };

    // Unsigned LEB128, as TorchSharp's codec writes counts, dtypes and dimensions.
    private static void WriteUnsigned(BinaryWriter writer, long value)
    {
        var v = (ulong)value;
        do
        {
            var b = (byte)(v & 0x7F);
            v >>= 7;
            writer.Write(v == 0 ? b : (byte)(b | 0x80));
        } while (v != 0);
    }

    private static long ReadUnsigned(BinaryReader reader, string source)
    {
        long value = 0;
        for (int shift = 0; shift < 63; shift += 7)
        {
            int b;
            try { b = reader.ReadByte(); }
            catch (EndOfStreamException) { throw Malformed(source, "it ends inside an entry header"); }
            value |= (long)(b & 0x7F) << shift;
            if ((b & 0x80) == 0) return value;
        }
        throw Malformed(source, "a number in an entry header is too long");
    }

    private static InvalidDataException Malformed(string source, string reason) =>
        new($"{source} is not a valid TorchSharp state dict: {reason}.");
}
