using System.Buffers.Binary;
using System.Numerics;
using System.Text;

namespace Lightning.Testing;

/// <summary>One scalar found in a TensorBoard event file.</summary>
public sealed record ScalarEvent(string Tag, long Step, float Value, double WallTime);

/// <summary>
/// Reads TensorBoard event files independently of the writer: TFRecord framing (length, masked CRC-32C of the
/// length, data, masked CRC-32C of the data) and the fields of tensorflow.Event / Summary.Value that carry scalars.
/// </summary>
public static class TensorBoardEvents
{
    public sealed record Contents(string? FileVersion, IReadOnlyList<ScalarEvent> Scalars);

    public static Contents Read(string path)
    {
        var bytes = File.ReadAllBytes(path);
        string? fileVersion = null;
        var scalars = new List<ScalarEvent>();
        int offset = 0;
        while (offset < bytes.Length)
        {
            if (bytes.Length - offset < 12) throw new InvalidDataException($"Truncated record header at byte {offset}.");
            var length = BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(offset));
            Check(bytes.AsSpan(offset, 8), BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(offset + 8)), "length", offset);
            offset += 12;
            if ((ulong)(bytes.Length - offset) < length + 4) throw new InvalidDataException($"Truncated record at byte {offset}.");
            var data = bytes.AsSpan(offset, (int)length);
            Check(data, BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(offset + (int)length)), "data", offset);
            offset += (int)length + 4;
            ParseEvent(data, ref fileVersion, scalars);
        }
        return new Contents(fileVersion, scalars);
    }

    private static void Check(ReadOnlySpan<byte> data, uint stored, string what, int offset)
    {
        uint crc = 0xFFFFFFFF;
        foreach (var b in data) crc = BitOperations.Crc32C(crc, b);
        crc ^= 0xFFFFFFFF;
        var masked = ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
        if (masked != stored) throw new InvalidDataException($"Bad masked CRC-32C of the {what} at byte {offset}.");
    }

    private static void ParseEvent(ReadOnlySpan<byte> data, ref string? fileVersion, List<ScalarEvent> scalars)
    {
        double wallTime = 0;
        long step = 0;
        var summaries = new List<byte[]>();
        var reader = new ProtoReader(data.ToArray());
        while (reader.Next(out var field, out var wire))
        {
            switch (field)
            {
                case 1 when wire == 1: wallTime = BitConverter.Int64BitsToDouble((long)reader.Fixed64()); break;
                case 2 when wire == 0: step = (long)reader.Varint(); break;
                case 3 when wire == 2: fileVersion = Encoding.UTF8.GetString(reader.Bytes()); break;
                case 5 when wire == 2: summaries.Add(reader.Bytes()); break;
                default: reader.Skip(wire); break;
            }
        }
        foreach (var summary in summaries)
        {
            var values = new ProtoReader(summary);
            while (values.Next(out var field, out var wire))
            {
                if (field != 1 || wire != 2) { values.Skip(wire); continue; }
                var value = new ProtoReader(values.Bytes());
                string tag = "";
                float? simple = null;
                while (value.Next(out var f, out var w))
                {
                    if (f == 1 && w == 2) tag = Encoding.UTF8.GetString(value.Bytes());
                    else if (f == 2 && w == 5) simple = BitConverter.Int32BitsToSingle((int)value.Fixed32());
                    else value.Skip(w);
                }
                if (simple is { } v) scalars.Add(new ScalarEvent(tag, step, v, wallTime));
            }
        }
    }

    private sealed class ProtoReader(byte[] data)
    {
        private int _position;

        public bool Next(out int field, out int wire)
        {
            field = wire = 0;
            if (_position >= data.Length) return false;
            var key = Varint();
            field = (int)(key >> 3);
            wire = (int)(key & 7);
            return true;
        }

        public ulong Varint()
        {
            ulong result = 0;
            for (int shift = 0; ; shift += 7)
            {
                var b = data[_position++];
                result |= (ulong)(b & 0x7f) << shift;
                if (b < 0x80) return result;
            }
        }

        public ulong Fixed64() { var v = BinaryPrimitives.ReadUInt64LittleEndian(data.AsSpan(_position)); _position += 8; return v; }
        public uint Fixed32() { var v = BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(_position)); _position += 4; return v; }
        public byte[] Bytes() { var n = (int)Varint(); var v = data.AsSpan(_position, n).ToArray(); _position += n; return v; }

        public void Skip(int wire)
        {
            switch (wire)
            {
                case 0: Varint(); break;
                case 1: _position += 8; break;
                case 2: _position += (int)Varint(); break;
                case 5: _position += 4; break;
                default: throw new InvalidDataException($"Unsupported protobuf wire type {wire}.");
            }
        }
    }
}
