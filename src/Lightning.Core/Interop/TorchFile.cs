using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using static TorchSharp.torch;

namespace Lightning.Interop;

/// <summary>
/// PyTorch's file format (what <c>torch.save</c> writes since 1.6): a zip whose <c>archive/data.pkl</c> pickles the
/// object and whose <c>archive/data/N</c> entries hold each storage's raw little-endian bytes. Reads any such file into
/// plain values (see <see cref="PickleReader"/>) and writes state dicts that <c>torch.load</c> reads.
/// </summary>
/// <remarks>
/// TorchSharp.PyBridge reads and writes this format too, but only whole files holding a flat state dict: it cannot
/// read the nested dicts of a Lightning checkpoint, its unpickler keeps only the tensors of an OrderedDict, it writes a
/// non-contiguous tensor's strides with its contiguous bytes, and its pickle handlers are process-wide registrations.
/// </remarks>
internal static class TorchFile
{
    private const string ArchiveName = "archive";

    /// <summary>True when <paramref name="archive"/> is a PyTorch file (has a <c>data.pkl</c>).</summary>
    public static bool IsTorchArchive(ZipArchive archive) => FindPickle(archive) is not null;

    /// <summary>Reads the object <c>torch.save</c> wrote to <paramref name="path"/>.</summary>
    public static object? Read(string path)
    {
        using var file = File.OpenRead(path);
        Span<byte> magic = stackalloc byte[4];
        if (file.ReadAtLeast(magic, 4, throwOnEndOfStream: false) < 4 || !magic.SequenceEqual("PK\x03\x04"u8))
            throw new InvalidDataException(magic[0] == 0x80
                ? $"'{path}' was saved with PyTorch's legacy format (torch.save(..., _use_new_zipfile_serialization=False)); " +
                  "load it in Python and save it again with torch.save's default format."
                : $"'{path}' is not a PyTorch file: it does not start with a zip header (PK\\x03\\x04).");
        file.Position = 0;
        ZipArchive archive;
        try
        {
            archive = new ZipArchive(file, ZipArchiveMode.Read);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"'{path}' is not a readable PyTorch file: its zip directory is damaged (is the file truncated?): {e.Message}", e);
        }
        using (archive) return Read(archive, path);
    }

    /// <summary>Reads the object in an open PyTorch archive; <paramref name="path"/> names it in errors.</summary>
    public static object? Read(ZipArchive archive, string path)
    {
        var pickle = FindPickle(archive) ?? throw new InvalidDataException($"'{path}' is a zip file but not a PyTorch file: it has no data.pkl.");
        var prefix = pickle.FullName[..^"data.pkl".Length];
        if (archive.GetEntry(prefix + "byteorder") is { } order)
        {
            using var reader = new StreamReader(order.Open());
            var value = reader.ReadToEnd().Trim();
            if (value != "little")
                throw new InvalidDataException($"'{path}' holds {value}-endian tensors; only little-endian files are read.");
        }
        var storages = new Dictionary<string, Tensor>();
        Tensor LoadStorage(string key, ScalarType dtype, long numel)
        {
            // Tensors that share a storage (views, tied weights) name the same key.
            if (storages.TryGetValue(key, out var cached)) return cached;
            var entry = archive.GetEntry($"{prefix}data/{key}")
                        ?? throw new InvalidDataException($"'{path}' is not a readable PyTorch file: tensor data 'data/{key}' is missing.");
            var bytes = checked(numel * ElementSize(dtype));
            if (entry.Length < bytes)
                throw new InvalidDataException(
                    $"'{path}' is not a readable PyTorch file: tensor data 'data/{key}' has {entry.Length} bytes but the pickle says " +
                    $"{numel} {dtype} elements ({bytes} bytes).");
            if (bytes > Array.MaxLength)
                throw new NotSupportedException($"'{path}': tensor data 'data/{key}' has {bytes} bytes; storages up to {Array.MaxLength} bytes are read.");
            var data = new byte[bytes];
            using (var stream = entry.Open())
            {
                var read = stream.ReadAtLeast(data, data.Length, throwOnEndOfStream: false);
                if (read < data.Length)
                    throw new InvalidDataException(
                        $"'{path}' is not a readable PyTorch file: tensor data 'data/{key}' ends after {read} of {bytes} bytes (is the file truncated?).");
            }
            var flat = empty(numel, dtype);
            if (numel > 0) flat.bytes = data;
            return storages[key] = flat.DetachFromDisposeScope();
        }
        try
        {
            using var stream = new BufferedStream(pickle.Open(), 1 << 16);
            return new PickleReader(stream, path, LoadStorage).Load();
        }
        catch (InvalidDataException e) when (!e.Message.Contains(path, StringComparison.Ordinal))
        {
            // Zip errors (a bad CRC, a truncated entry) say nothing of the file.
            throw new InvalidDataException($"'{path}' is not a readable PyTorch file: {e.Message}", e);
        }
        finally
        {
            foreach (var storage in storages.Values) storage.Dispose();
        }
    }

    private static ZipArchiveEntry? FindPickle(ZipArchive archive) =>
        archive.Entries.FirstOrDefault(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal) && e.FullName.Count(c => c == '/') == 1);

    internal static long ElementSize(ScalarType dtype) => dtype switch
    {
        ScalarType.Float64 or ScalarType.Int64 or ScalarType.ComplexFloat32 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int16 => 2,
        ScalarType.Int8 or ScalarType.Byte or ScalarType.Bool => 1,
        ScalarType.ComplexFloat64 => 16,
        _ => throw new NotSupportedException($"Tensors of dtype {dtype} cannot be stored in a PyTorch file by this library."),
    };

    private static string StorageName(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => "FloatStorage",
        ScalarType.Float64 => "DoubleStorage",
        ScalarType.Float16 => "HalfStorage",
        ScalarType.BFloat16 => "BFloat16Storage",
        ScalarType.Int64 => "LongStorage",
        ScalarType.Int32 => "IntStorage",
        ScalarType.Int16 => "ShortStorage",
        ScalarType.Int8 => "CharStorage",
        ScalarType.Byte => "ByteStorage",
        ScalarType.Bool => "BoolStorage",
        ScalarType.ComplexFloat32 => "ComplexFloatStorage",
        ScalarType.ComplexFloat64 => "ComplexDoubleStorage",
        _ => throw new NotSupportedException($"Tensors of dtype {dtype} cannot be stored in a PyTorch file."),
    };

    /// <summary>
    /// Writes <paramref name="state"/> as <c>torch.save(OrderedDict(state))</c> would: each tensor contiguous, in its own
    /// storage, on the CPU. Entries are stored uncompressed, as PyTorch writes them.
    /// </summary>
    public static void WriteStateDict(Stream stream, IReadOnlyList<(string Name, Tensor Value)> state)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("PyTorch files are written on little-endian machines only.");
        using var archive = new ZipArchive(stream, ZipArchiveMode.Create, leaveOpen: true);
        using (var pickle = new BufferedStream(NewEntry(archive, $"{ArchiveName}/data.pkl").Open()))
            WritePickle(pickle, state);
        WriteText(archive, $"{ArchiveName}/byteorder", "little");
        for (int i = 0; i < state.Count; i++)
        {
            using var entry = NewEntry(archive, $"{ArchiveName}/data/{i}").Open();
            WriteBytes(entry, state[i].Value);
        }
        WriteText(archive, $"{ArchiveName}/version", "3\n");
    }

    private static void WriteText(ZipArchive archive, string name, string text)
    {
        using var entry = NewEntry(archive, name).Open();
        entry.Write(Encoding.ASCII.GetBytes(text));
    }

    // A fixed time stamp, as PyTorch's writer uses: the same weights give the same bytes.
    private static ZipArchiveEntry NewEntry(ZipArchive archive, string name)
    {
        var entry = archive.CreateEntry(name, CompressionLevel.NoCompression);
        entry.LastWriteTime = new DateTimeOffset(1980, 1, 1, 0, 0, 0, TimeSpan.Zero);
        return entry;
    }

    /// <summary>Writes a tensor's elements in logical (row-major) order, a few MB at a time.</summary>
    internal static void WriteBytes(Stream stream, Tensor tensor)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var flat = tensor.detach().cpu().contiguous().view(-1);
        var perChunk = Math.Max(1, (4 << 20) / ElementSize(tensor.dtype));
        for (long start = 0; start < flat.numel(); start += perChunk)
        {
            using var inner = NewDisposeScope();
            stream.Write(flat.narrow(0, start, Math.Min(perChunk, flat.numel() - start)).bytes);
        }
    }

    private static void WritePickle(Stream s, IReadOnlyList<(string Name, Tensor Value)> state)
    {
        s.Write([0x80, 2]);                                  // PROTO 2
        Global(s, "collections", "OrderedDict");
        s.WriteByte((byte)')');                              // EMPTY_TUPLE
        s.WriteByte((byte)'R');                              // REDUCE: OrderedDict()
        s.WriteByte((byte)'(');                              // MARK
        for (int i = 0; i < state.Count; i++)
        {
            var (name, tensor) = state[i];
            String(s, name);
            Global(s, "torch._utils", "_rebuild_tensor_v2");
            s.WriteByte((byte)'(');
            // persistent id: ("storage", torch.XStorage, key, "cpu", numel)
            s.WriteByte((byte)'(');
            String(s, "storage");
            Global(s, "torch", StorageName(tensor.dtype));
            String(s, i.ToString(System.Globalization.CultureInfo.InvariantCulture));
            String(s, "cpu");
            Int(s, tensor.numel());
            s.WriteByte((byte)'t');
            s.WriteByte((byte)'Q');                          // BINPERSID
            Int(s, 0);                                       // storage_offset
            Tuple(s, tensor.shape);
            Tuple(s, ContiguousStrides(tensor.shape));
            s.WriteByte(0x89);                               // requires_grad = False
            Global(s, "collections", "OrderedDict");         // backward_hooks = OrderedDict()
            s.WriteByte((byte)')');
            s.WriteByte((byte)'R');
            s.WriteByte((byte)'t');
            s.WriteByte((byte)'R');
        }
        s.WriteByte((byte)'u');                              // SETITEMS
        s.WriteByte((byte)'.');                              // STOP
    }

    private static long[] ContiguousStrides(long[] shape)
    {
        var strides = new long[shape.Length];
        long stride = 1;
        for (int i = shape.Length - 1; i >= 0; i--)
        {
            strides[i] = stride;
            stride *= Math.Max(1, shape[i]);
        }
        return strides;
    }

    private static void Global(Stream s, string module, string name)
    {
        s.WriteByte((byte)'c');
        s.Write(Encoding.ASCII.GetBytes($"{module}\n{name}\n"));
    }

    private static void String(Stream s, string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        s.WriteByte((byte)'X');                              // BINUNICODE
        Span<byte> length = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(length, (uint)bytes.Length);
        s.Write(length);
        s.Write(bytes);
    }

    private static void Int(Stream s, long value)
    {
        Span<byte> bytes = stackalloc byte[8];
        if (value is >= int.MinValue and <= int.MaxValue)
        {
            s.WriteByte((byte)'J');                          // BININT
            BinaryPrimitives.WriteInt32LittleEndian(bytes, (int)value);
            s.Write(bytes[..4]);
        }
        else
        {
            s.Write([0x8a, 8]);                              // LONG1, 8 bytes
            BinaryPrimitives.WriteInt64LittleEndian(bytes, value);
            s.Write(bytes);
        }
    }

    private static void Tuple(Stream s, long[] values)
    {
        s.WriteByte((byte)'(');
        foreach (var v in values) Int(s, v);
        s.WriteByte((byte)'t');
    }
}
