using System.Buffers.Binary;
using System.Text;
using System.Text.Json;
using static TorchSharp.torch;

namespace Lightning.Interop;

/// <summary>
/// The safetensors format: an 8-byte little-endian header length, a JSON header mapping each name to its
/// <c>dtype</c>, <c>shape</c> and <c>data_offsets</c> (begin and end, relative to the data after the header), then the
/// raw little-endian data. Written here rather than through TorchSharp.PyBridge so that every read is checked
/// (offsets inside the file, sizes matching the shapes) and writes go through the durable writer.
/// </summary>
internal static class SafeTensorsFile
{
    // A header larger than this is not a safetensors file (the reference reader's limit is 100 MB).
    private const long MaxHeaderBytes = 100_000_000;

    private static readonly Dictionary<string, ScalarType> DTypes = new()
    {
        ["F64"] = ScalarType.Float64, ["F32"] = ScalarType.Float32, ["F16"] = ScalarType.Float16, ["BF16"] = ScalarType.BFloat16,
        ["I64"] = ScalarType.Int64, ["I32"] = ScalarType.Int32, ["I16"] = ScalarType.Int16, ["I8"] = ScalarType.Int8,
        ["U8"] = ScalarType.Byte, ["BOOL"] = ScalarType.Bool,
    };

    /// <summary>Reads every tensor of <paramref name="path"/>, in file order; the caller owns them.</summary>
    public static List<(string Name, Tensor Value)> Read(string path)
    {
        using var file = File.OpenRead(path);
        Span<byte> prefix = stackalloc byte[8];
        if (file.ReadAtLeast(prefix, 8, throwOnEndOfStream: false) < 8)
            throw Bad(path, $"it has {file.Length} bytes, fewer than the 8-byte header length");
        var headerLength = BinaryPrimitives.ReadInt64LittleEndian(prefix);
        if (headerLength <= 0 || headerLength > MaxHeaderBytes || headerLength > file.Length - 8)
            throw Bad(path, $"its header length is {headerLength} bytes but the file has {file.Length} bytes " +
                            $"(a safetensors header is 1 to {MaxHeaderBytes} bytes and fits in the file)");
        var header = new byte[headerLength];
        file.ReadExactly(header);
        var dataStart = 8 + headerLength;
        var dataLength = file.Length - dataStart;

        JsonDocument json;
        try
        {
            json = JsonDocument.Parse(header);
        }
        catch (JsonException e)
        {
            throw Bad(path, $"its header is not JSON ({e.Message})", e);
        }
        var result = new List<(string, Tensor)>();
        try
        {
            using (json)
            {
                if (json.RootElement.ValueKind != JsonValueKind.Object) throw Bad(path, "its header is not a JSON object");
                var entries = new List<(string Name, ScalarType DType, long[] Shape, long Begin, long End)>();
                foreach (var property in json.RootElement.EnumerateObject())
                {
                    if (property.Name == "__metadata__") continue;
                    entries.Add(ParseEntry(path, property, dataLength));
                }
                // Tensors in the order of their data, which is the order they were written in.
                foreach (var (name, dtype, shape, begin, end) in entries.OrderBy(e => e.Begin))
                {
                    var tensor = empty(shape, dtype).DetachFromDisposeScope();
                    result.Add((name, tensor));
                    if (end == begin) continue;
                    if (end - begin > Array.MaxLength) throw new NotSupportedException($"'{path}': tensor '{name}' has {end - begin} bytes; up to {Array.MaxLength} are read.");
                    var data = new byte[end - begin];
                    file.Position = dataStart + begin;
                    file.ReadExactly(data);
                    tensor.bytes = data;
                }
            }
            return result;
        }
        catch
        {
            foreach (var (_, tensor) in result) tensor.Dispose();
            throw;
        }
    }

    private static (string, ScalarType, long[], long, long) ParseEntry(string path, JsonProperty property, long dataLength)
    {
        var name = property.Name;
        var value = property.Value;
        if (value.ValueKind != JsonValueKind.Object || !value.TryGetProperty("dtype", out var dtypeJson)
            || !value.TryGetProperty("shape", out var shapeJson) || !value.TryGetProperty("data_offsets", out var offsetsJson))
            throw Bad(path, $"tensor '{name}' lacks dtype, shape or data_offsets");
        var dtypeName = dtypeJson.GetString() ?? "";
        if (!DTypes.TryGetValue(dtypeName, out var dtype))
            throw Bad(path, $"tensor '{name}' has dtype '{dtypeName}'; the dtypes read are {string.Join(", ", DTypes.Keys)}");
        var shape = shapeJson.EnumerateArray().Select(d => d.GetInt64()).ToArray();
        if (shape.Any(d => d < 0)) throw Bad(path, $"tensor '{name}' has a negative dimension in shape {PickleReader.Shape(shape)}");
        var offsets = offsetsJson.EnumerateArray().Select(d => d.GetInt64()).ToArray();
        if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0])
            throw Bad(path, $"tensor '{name}' has data_offsets [{string.Join(", ", offsets)}]; expected [begin, end] with 0 <= begin <= end");
        var expected = checked(shape.Aggregate(1L, (a, b) => a * b) * TorchFile.ElementSize(dtype));
        if (offsets[1] - offsets[0] != expected)
            throw Bad(path, $"tensor '{name}' ({dtypeName}, shape {PickleReader.Shape(shape)}) needs {expected} bytes but its data_offsets " +
                            $"[{offsets[0]}, {offsets[1]}] span {offsets[1] - offsets[0]}");
        if (offsets[1] > dataLength)
            throw Bad(path, $"tensor '{name}' ends at byte {offsets[1]} of the data but the file holds {dataLength} bytes of data (is it truncated?)");
        return (name, dtype, shape, offsets[0], offsets[1]);
    }

    /// <summary>Writes <paramref name="state"/> in order, each tensor contiguous, with <c>{"format": "pt"}</c> metadata.</summary>
    public static void Write(Stream stream, IReadOnlyList<(string Name, Tensor Value)> state)
    {
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("safetensors files are written on little-endian machines only.");
        var header = new MemoryStream();
        using (var json = new Utf8JsonWriter(header))
        {
            json.WriteStartObject();
            json.WriteStartObject("__metadata__");
            json.WriteString("format", "pt");
            json.WriteEndObject();
            long offset = 0;
            foreach (var (name, tensor) in state)
            {
                var dtype = DTypes.FirstOrDefault(d => d.Value == tensor.dtype).Key
                            ?? throw new NotSupportedException($"Tensor '{name}' has dtype {tensor.dtype}, which safetensors files do not hold here.");
                var bytes = tensor.numel() * TorchFile.ElementSize(tensor.dtype);
                json.WriteStartObject(name);
                json.WriteString("dtype", dtype);
                json.WriteStartArray("shape");
                foreach (var d in tensor.shape) json.WriteNumberValue(d);
                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + bytes);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += bytes;
            }
            json.WriteEndObject();
        }
        // Padded with spaces to a multiple of 8, as the reference writer does, so the data is aligned.
        while (header.Length % 8 != 0) header.WriteByte((byte)' ');
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(length, header.Length);
        stream.Write(length);
        header.Position = 0;
        header.CopyTo(stream);
        foreach (var (_, tensor) in state) TorchFile.WriteBytes(stream, tensor);
    }

    private static InvalidDataException Bad(string path, string reason, Exception? inner = null) =>
        new($"'{path}' is not a readable safetensors file: {reason}.", inner);
}
