using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Lightning.Serving;

/// <summary>Mapping between the Open Inference Protocol datatypes, ONNX element types and managed arrays.</summary>
internal static class TensorTypes
{
    private static readonly Dictionary<string, TensorElementType> FromV2Names = new(StringComparer.Ordinal)
    {
        ["BOOL"] = TensorElementType.Bool,
        ["UINT8"] = TensorElementType.UInt8,
        ["UINT16"] = TensorElementType.UInt16,
        ["UINT32"] = TensorElementType.UInt32,
        ["UINT64"] = TensorElementType.UInt64,
        ["INT8"] = TensorElementType.Int8,
        ["INT16"] = TensorElementType.Int16,
        ["INT32"] = TensorElementType.Int32,
        ["INT64"] = TensorElementType.Int64,
        ["FP16"] = TensorElementType.Float16,
        ["BF16"] = TensorElementType.BFloat16,
        ["FP32"] = TensorElementType.Float,
        ["FP64"] = TensorElementType.Double,
        ["BYTES"] = TensorElementType.String,
    };

    /// <summary>The datatypes whose JSON data this server reads and writes.</summary>
    public static readonly string[] SupportedDatatypes = ["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "BF16", "FP32", "FP64", "BYTES"];

    public static bool TryFromV2(string datatype, out TensorElementType type) => FromV2Names.TryGetValue(datatype, out type);

    // Switches, not searches of the tables above: both run for every input and output of every request.
    public static string ToV2(TensorElementType type) => type switch
    {
        TensorElementType.Bool => "BOOL",
        TensorElementType.UInt8 => "UINT8",
        TensorElementType.UInt16 => "UINT16",
        TensorElementType.UInt32 => "UINT32",
        TensorElementType.UInt64 => "UINT64",
        TensorElementType.Int8 => "INT8",
        TensorElementType.Int16 => "INT16",
        TensorElementType.Int32 => "INT32",
        TensorElementType.Int64 => "INT64",
        TensorElementType.Float16 => "FP16",
        TensorElementType.BFloat16 => "BF16",
        TensorElementType.Float => "FP32",
        TensorElementType.Double => "FP64",
        TensorElementType.String => "BYTES",
        _ => type.ToString().ToUpperInvariant(),
    };

    public static bool IsSupported(TensorElementType type) => type is TensorElementType.Bool
        or TensorElementType.UInt8 or TensorElementType.UInt16 or TensorElementType.UInt32 or TensorElementType.UInt64
        or TensorElementType.Int8 or TensorElementType.Int16 or TensorElementType.Int32 or TensorElementType.Int64
        or TensorElementType.Float or TensorElementType.Double
        or TensorElementType.Float16 or TensorElementType.BFloat16 or TensorElementType.String;

    /// <summary>Bytes per element in the binary tensor data extension; 0 for BYTES, whose elements carry their own length.</summary>
    public static int ElementSize(TensorElementType type) => type switch
    {
        TensorElementType.Bool or TensorElementType.UInt8 or TensorElementType.Int8 => 1,
        TensorElementType.UInt16 or TensorElementType.Int16 or TensorElementType.Float16 or TensorElementType.BFloat16 => 2,
        TensorElementType.UInt32 or TensorElementType.Int32 or TensorElementType.Float => 4,
        TensorElementType.UInt64 or TensorElementType.Int64 or TensorElementType.Double => 8,
        _ => 0,
    };

    public static Type ClrType(TensorElementType type) => type switch
    {
        TensorElementType.Bool => typeof(bool),
        TensorElementType.UInt8 => typeof(byte),
        TensorElementType.UInt16 => typeof(ushort),
        TensorElementType.UInt32 => typeof(uint),
        TensorElementType.UInt64 => typeof(ulong),
        TensorElementType.Int8 => typeof(sbyte),
        TensorElementType.Int16 => typeof(short),
        TensorElementType.Int32 => typeof(int),
        TensorElementType.Int64 => typeof(long),
        TensorElementType.Float => typeof(float),
        TensorElementType.Double => typeof(double),
        TensorElementType.Float16 => typeof(Float16),
        TensorElementType.BFloat16 => typeof(BFloat16),
        // BYTES elements are raw bytes: the protocol's strings need not be UTF-8, and ONNX Runtime keeps them as bytes too.
        TensorElementType.String => typeof(byte[]),
        _ => throw new NotSupportedException($"Element type {ToV2(type)} is not supported; the supported datatypes are [{string.Join(", ", SupportedDatatypes)}]."),
    };

    public static Array Allocate(TensorElementType type, long count) => Array.CreateInstance(ClrType(type), count);

    public static string Format(IEnumerable<long> shape) => $"[{string.Join(", ", shape)}]";

    /// <summary>The element count of a concrete shape, or -1 when it overflows <paramref name="limit"/>.</summary>
    public static long ElementCount(IReadOnlyList<long> shape, long limit)
    {
        long count = 1;
        foreach (var d in shape)
        {
            if (d == 0) return 0;
            if (count > limit / d) return -1;
            count *= d;
        }
        return count;
    }

    // By element type, not by array type: the runtime lets a byte[] pass as an sbyte[], a ulong[] as a long[] and so on.
    public static OrtValue ToOrtValue(InferenceTensor tensor) => tensor.ElementType switch
    {
        TensorElementType.Float => OrtValue.CreateTensorValueFromMemory((float[])tensor.Data, tensor.Shape),
        TensorElementType.Double => OrtValue.CreateTensorValueFromMemory((double[])tensor.Data, tensor.Shape),
        TensorElementType.Int64 => OrtValue.CreateTensorValueFromMemory((long[])tensor.Data, tensor.Shape),
        TensorElementType.Int32 => OrtValue.CreateTensorValueFromMemory((int[])tensor.Data, tensor.Shape),
        TensorElementType.Int16 => OrtValue.CreateTensorValueFromMemory((short[])tensor.Data, tensor.Shape),
        TensorElementType.Int8 => OrtValue.CreateTensorValueFromMemory((sbyte[])tensor.Data, tensor.Shape),
        TensorElementType.UInt64 => OrtValue.CreateTensorValueFromMemory((ulong[])tensor.Data, tensor.Shape),
        TensorElementType.UInt32 => OrtValue.CreateTensorValueFromMemory((uint[])tensor.Data, tensor.Shape),
        TensorElementType.UInt16 => OrtValue.CreateTensorValueFromMemory((ushort[])tensor.Data, tensor.Shape),
        TensorElementType.UInt8 => OrtValue.CreateTensorValueFromMemory((byte[])tensor.Data, tensor.Shape),
        TensorElementType.Bool => OrtValue.CreateTensorValueFromMemory((bool[])tensor.Data, tensor.Shape),
        TensorElementType.Float16 => OrtValue.CreateTensorValueFromMemory((Float16[])tensor.Data, tensor.Shape),
        TensorElementType.BFloat16 => OrtValue.CreateTensorValueFromMemory((BFloat16[])tensor.Data, tensor.Shape),
        TensorElementType.String => StringTensor(tensor),
        _ => throw new NotSupportedException($"Input '{tensor.Name}' has element type {ToV2(tensor.ElementType)}, which has no ONNX tensor here."),
    };

    private static OrtValue StringTensor(InferenceTensor tensor)
    {
        var value = OrtValue.CreateTensorWithEmptyStrings(OrtAllocator.DefaultInstance, tensor.Shape);
        try
        {
            var elements = (byte[][])tensor.Data;
            for (int i = 0; i < elements.Length; i++) value.StringTensorSetElementAt(elements[i].AsSpan(), i);
            return value;
        }
        catch
        {
            value.Dispose();
            throw;
        }
    }

    private static byte[][] StringElements(OrtValue value, long count)
    {
        var elements = new byte[count][];
        for (int i = 0; i < elements.Length; i++) elements[i] = value.GetStringElementAsSpan(i).ToArray();
        return elements;
    }

    public static InferenceTensor FromOrtValue(string name, OrtValue value)
    {
        var info = value.GetTensorTypeAndShape();
        var shape = info.Shape;
        Array data = info.ElementDataType switch
        {
            TensorElementType.Float => value.GetTensorDataAsSpan<float>().ToArray(),
            TensorElementType.Double => value.GetTensorDataAsSpan<double>().ToArray(),
            TensorElementType.Int64 => value.GetTensorDataAsSpan<long>().ToArray(),
            TensorElementType.Int32 => value.GetTensorDataAsSpan<int>().ToArray(),
            TensorElementType.Int16 => value.GetTensorDataAsSpan<short>().ToArray(),
            TensorElementType.Int8 => value.GetTensorDataAsSpan<sbyte>().ToArray(),
            TensorElementType.UInt64 => value.GetTensorDataAsSpan<ulong>().ToArray(),
            TensorElementType.UInt32 => value.GetTensorDataAsSpan<uint>().ToArray(),
            TensorElementType.UInt16 => value.GetTensorDataAsSpan<ushort>().ToArray(),
            TensorElementType.UInt8 => value.GetTensorDataAsSpan<byte>().ToArray(),
            TensorElementType.Bool => value.GetTensorDataAsSpan<bool>().ToArray(),
            TensorElementType.Float16 => value.GetTensorDataAsSpan<Float16>().ToArray(),
            TensorElementType.BFloat16 => value.GetTensorDataAsSpan<BFloat16>().ToArray(),
            TensorElementType.String => StringElements(value, info.ElementCount),
            var other => throw new NotSupportedException(
                $"Output '{name}' has element type {ToV2(other)}; the supported datatypes are [{string.Join(", ", SupportedDatatypes)}]."),
        };
        return new InferenceTensor(name, info.ElementDataType, shape, data);
    }

    /// <summary>Joins tensors along dim 0 (their other dims are equal).</summary>
    public static InferenceTensor Concat(IReadOnlyList<InferenceTensor> parts)
    {
        var first = parts[0];
        long rows = parts.Sum(p => p.Shape[0]);
        long total = parts.Sum(p => (long)p.Data.Length);
        var data = Allocate(first.ElementType, total);
        long offset = 0;
        foreach (var p in parts)
        {
            Array.Copy(p.Data, 0, data, offset, p.Data.Length);
            offset += p.Data.Length;
        }
        var shape = (long[])first.Shape.Clone();
        shape[0] = rows;
        return new InferenceTensor(first.Name, first.ElementType, shape, data);
    }

    /// <summary>Takes rows [<paramref name="start"/>, <paramref name="start"/> + <paramref name="rows"/>) of dim 0.</summary>
    public static InferenceTensor SliceRows(InferenceTensor tensor, long start, long rows)
    {
        long perRow = tensor.Shape[0] == 0 ? 0 : tensor.Data.Length / tensor.Shape[0];
        var data = Allocate(tensor.ElementType, perRow * rows);
        Array.Copy(tensor.Data, start * perRow, data, 0, perRow * rows);
        var shape = (long[])tensor.Shape.Clone();
        shape[0] = rows;
        return tensor with { Shape = shape, Data = data };
    }
}
