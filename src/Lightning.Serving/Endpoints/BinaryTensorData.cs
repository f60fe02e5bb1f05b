using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Lightning.Serving;

/// <summary>
/// The tensor bytes of the binary tensor data extension (Triton's): fixed-size types as their little-endian values in
/// row-major order, BOOL as one byte 0 or 1, and each BYTES element as a 4-byte little-endian length and then its bytes.
/// gRPC's <c>raw_input_contents</c> and <c>raw_output_contents</c> use the same layout.
/// </summary>
internal static class BinaryTensorData
{
    /// <summary>Reads <paramref name="bytes"/> as a tensor of <paramref name="shape"/>.</summary>
    /// <exception cref="InferenceRequestException">The byte count does not match the shape; the message names <paramref name="where"/>.</exception>
    public static Array Decode(TensorElementType type, long[] shape, ReadOnlySpan<byte> bytes, string where)
    {
        int size = TensorTypes.ElementSize(type);
        if (type == TensorElementType.String) return DecodeStrings(shape, bytes, where);
        // Each element takes at least one byte, so a shape with more elements than bytes cannot match: never allocate for it.
        var count = TensorTypes.ElementCount(shape, bytes.Length);
        if (count < 0 || count * size != bytes.Length)
            throw new InferenceRequestException(
                $"input byte size mismatch for {where}: shape {TensorTypes.Format(shape)} of {TensorTypes.ToV2(type)} needs " +
                $"{(count < 0 ? "more than " + bytes.Length : (count * size).ToString())} bytes, got {bytes.Length}.");
        var data = TensorTypes.Allocate(type, count);
        if (type == TensorElementType.Bool)
        {
            var flags = (bool[])data;
            for (int i = 0; i < bytes.Length; i++)
            {
                if (bytes[i] > 1)
                    throw new InferenceRequestException($"{where}: BOOL element {i} is byte {bytes[i]}; binary BOOL elements are 0 or 1.");
                flags[i] = bytes[i] == 1;
            }
            return data;
        }
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("The binary tensor data extension is read on little-endian machines only.");
        bytes.CopyTo(MemoryMarshal.AsBytes(Span(data)));
        return data;
    }

    private static byte[][] DecodeStrings(long[] shape, ReadOnlySpan<byte> bytes, string where)
    {
        // Each element takes at least its 4-byte length.
        var count = TensorTypes.ElementCount(shape, bytes.Length / 4);
        if (count < 0)
            throw new InferenceRequestException(
                $"input byte size mismatch for {where}: shape {TensorTypes.Format(shape)} of BYTES needs more than the {bytes.Length} bytes sent (4 bytes of length per element at least).");
        var elements = new byte[count][];
        int offset = 0;
        for (int i = 0; i < count; i++)
        {
            if (bytes.Length - offset < 4)
                throw new InferenceRequestException($"input byte size mismatch for {where}: BYTES element {i} of {count} has no 4-byte length; the data ends at byte {bytes.Length}.");
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(bytes[offset..]);
            offset += 4;
            if (length > (uint)(bytes.Length - offset))
                throw new InferenceRequestException(
                    $"input byte size mismatch for {where}: BYTES element {i} declares {length} bytes, but only {bytes.Length - offset} are left.");
            elements[i] = bytes.Slice(offset, (int)length).ToArray();
            offset += (int)length;
        }
        if (offset != bytes.Length)
            throw new InferenceRequestException(
                $"input byte size mismatch for {where}: its {count} BYTES elements take {offset} bytes, but {bytes.Length} were sent.");
        return elements;
    }

    /// <summary>The byte length of <paramref name="tensor"/> in this layout.</summary>
    public static long Length(InferenceTensor tensor)
    {
        if (tensor.ElementType != TensorElementType.String) return (long)tensor.Data.Length * TensorTypes.ElementSize(tensor.ElementType);
        long length = 0;
        foreach (var element in (byte[][])tensor.Data) length += 4 + element.Length;
        return length;
    }

    /// <summary>Writes <paramref name="tensor"/> in this layout to <paramref name="destination"/>, which holds <see cref="Length"/> bytes.</summary>
    public static void Encode(InferenceTensor tensor, Span<byte> destination)
    {
        if (tensor.ElementType == TensorElementType.String)
        {
            int offset = 0;
            foreach (var element in (byte[][])tensor.Data)
            {
                BinaryPrimitives.WriteUInt32LittleEndian(destination[offset..], (uint)element.Length);
                element.CopyTo(destination[(offset + 4)..]);
                offset += 4 + element.Length;
            }
            return;
        }
        if (!BitConverter.IsLittleEndian) throw new PlatformNotSupportedException("The binary tensor data extension is written on little-endian machines only.");
        MemoryMarshal.AsBytes(Span(tensor.Data)).CopyTo(destination);
    }

    /// <summary>The elements of a fixed-size array as a span (bool is one byte, as the layout wants).</summary>
    private static Span<byte> Span(Array data) => data switch
    {
        float[] a => MemoryMarshal.AsBytes(a.AsSpan()),
        double[] a => MemoryMarshal.AsBytes(a.AsSpan()),
        long[] a => MemoryMarshal.AsBytes(a.AsSpan()),
        int[] a => MemoryMarshal.AsBytes(a.AsSpan()),
        short[] a => MemoryMarshal.AsBytes(a.AsSpan()),
        sbyte[] a => MemoryMarshal.AsBytes(a.AsSpan()),
        ulong[] a => MemoryMarshal.AsBytes(a.AsSpan()),
        uint[] a => MemoryMarshal.AsBytes(a.AsSpan()),
        ushort[] a => MemoryMarshal.AsBytes(a.AsSpan()),
        byte[] a => a.AsSpan(),
        bool[] a => MemoryMarshal.AsBytes(a.AsSpan()),
        Float16[] a => MemoryMarshal.AsBytes(a.AsSpan()),
        BFloat16[] a => MemoryMarshal.AsBytes(a.AsSpan()),
        _ => throw new NotSupportedException($"{data.GetType().Name} has no binary tensor layout."),
    };
}
