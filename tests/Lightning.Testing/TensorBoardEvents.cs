using System.Buffers.Binary;
using System.Numerics;
using System.Text;

namespace Lightning.Testing;

/// <summary>One scalar found in a TensorBoard event file.</summary>
public sealed record ScalarEvent(string Tag, long Step, float Value, double WallTime);

/// <summary>One histogram (HistogramProto) found in a TensorBoard event file.</summary>
public sealed record HistogramEvent(string Tag, long Step, double Min, double Max, double Num, double Sum);

/// <summary>One summary with plugin data (SummaryMetadata.PluginData) found in a TensorBoard event file.</summary>
public sealed record PluginEvent(string Tag, long Step, string PluginName, byte[] Content);

/// <summary>A decoded HParamsPluginData: which part it is, and what it holds.</summary>
public sealed record HparamsData(string Part, IReadOnlyDictionary<string, object> Hparams, IReadOnlyList<string> HparamNames, IReadOnlyList<string> Metrics, int Status);

/// <summary>
/// Reads TensorBoard event files independently of the writer: TFRecord framing (length, masked CRC-32C of the
/// length, data, masked CRC-32C of the data) and the fields of tensorflow.Event / Summary.Value that carry scalars.
/// </summary>
public static class TensorBoardEvents
{
    public sealed record Contents(string? FileVersion, IReadOnlyList<ScalarEvent> Scalars)
    {
        public List<HistogramEvent> Histograms { get; } = [];
        public List<PluginEvent> Plugins { get; } = [];
    }

    /// <summary>Decodes the content of an hparams plugin summary (tensorboard/plugins/hparams/plugin_data.proto, api.proto).</summary>
    public static HparamsData DecodeHparams(byte[] content)
    {
        var part = "";
        var hparams = new Dictionary<string, object>(StringComparer.Ordinal);
        var names = new List<string>();
        var metrics = new List<string>();
        int status = 0;
        var data = new ProtoReader(content);
        while (data.Next(out var field, out var wire))
        {
            if (wire != 2) { data.Skip(wire); continue; }
            var body = new ProtoReader(data.Bytes());
            switch (field)
            {
                case 2:
                    part = "experiment";
                    while (body.Next(out var f, out var w))
                    {
                        if (f == 4 && w == 2) names.Add(FirstString(body.Bytes(), 1));
                        else if (f == 5 && w == 2)
                        {
                            var info = new ProtoReader(body.Bytes());
                            while (info.Next(out var g, out var x))
                                if (g == 1 && x == 2) metrics.Add(FirstString(info.Bytes(), 2));
                                else info.Skip(x);
                        }
                        else body.Skip(w);
                    }
                    break;
                case 3:
                    part = "session_start_info";
                    while (body.Next(out var f, out var w))
                    {
                        if (f != 1 || w != 2) { body.Skip(w); continue; }
                        var entry = new ProtoReader(body.Bytes());
                        string key = "";
                        object value = "";
                        while (entry.Next(out var g, out var x))
                        {
                            if (g == 1 && x == 2) key = Encoding.UTF8.GetString(entry.Bytes());
                            else if (g == 2 && x == 2)
                            {
                                var v = new ProtoReader(entry.Bytes());
                                while (v.Next(out var h, out var y))
                                    value = (h, y) switch
                                    {
                                        (2, 1) => BitConverter.Int64BitsToDouble((long)v.Fixed64()),
                                        (3, 2) => Encoding.UTF8.GetString(v.Bytes()),
                                        (4, 0) => v.Varint() != 0,
                                        _ => Skipped(v, y),
                                    };
                            }
                            else entry.Skip(x);
                        }
                        hparams[key] = value;
                    }
                    break;
                case 4:
                    part = "session_end_info";
                    while (body.Next(out var f, out var w))
                        if (f == 1 && w == 0) status = (int)body.Varint();
                        else body.Skip(w);
                    break;
            }
        }
        return new HparamsData(part, hparams, names, metrics, status);
    }

    private static object Skipped(ProtoReader reader, int wire)
    {
        reader.Skip(wire);
        return "";
    }

    private static string FirstString(byte[] message, int field)
    {
        var reader = new ProtoReader(message);
        while (reader.Next(out var f, out var w))
            if (f == field && w == 2) return Encoding.UTF8.GetString(reader.Bytes());
            else reader.Skip(w);
        return "";
    }

    public static Contents Read(string path)
    {
        var bytes = File.ReadAllBytes(path);
        string? fileVersion = null;
        var scalars = new List<ScalarEvent>();
        var contents = new Contents(null, scalars);
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
            ParseEvent(data, ref fileVersion, scalars, contents);
        }
        var result = new Contents(fileVersion, scalars);
        result.Histograms.AddRange(contents.Histograms);
        result.Plugins.AddRange(contents.Plugins);
        return result;
    }

    private static void Check(ReadOnlySpan<byte> data, uint stored, string what, int offset)
    {
        uint crc = 0xFFFFFFFF;
        foreach (var b in data) crc = BitOperations.Crc32C(crc, b);
        crc ^= 0xFFFFFFFF;
        var masked = ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
        if (masked != stored) throw new InvalidDataException($"Bad masked CRC-32C of the {what} at byte {offset}.");
    }

    private static void ParseEvent(ReadOnlySpan<byte> data, ref string? fileVersion, List<ScalarEvent> scalars, Contents contents)
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
                byte[]? histogram = null, metadata = null;
                while (value.Next(out var f, out var w))
                {
                    if (f == 1 && w == 2) tag = Encoding.UTF8.GetString(value.Bytes());
                    else if (f == 2 && w == 5) simple = BitConverter.Int32BitsToSingle((int)value.Fixed32());
                    else if (f == 5 && w == 2) histogram = value.Bytes();
                    else if (f == 9 && w == 2) metadata = value.Bytes();
                    else value.Skip(w);
                }
                if (simple is { } v) scalars.Add(new ScalarEvent(tag, step, v, wallTime));
                if (histogram is not null)
                {
                    var fields = new double[6];
                    var h = new ProtoReader(histogram);
                    while (h.Next(out var f, out var w))
                        if (f is >= 1 and <= 5 && w == 1) fields[f] = BitConverter.Int64BitsToDouble((long)h.Fixed64());
                        else h.Skip(w);
                    contents.Histograms.Add(new HistogramEvent(tag, step, fields[1], fields[2], fields[3], fields[4]));
                }
                if (metadata is not null && FirstMessage(metadata, 1) is { } plugin)
                {
                    string pluginName = "";
                    byte[] content = [];
                    var p = new ProtoReader(plugin);
                    while (p.Next(out var f, out var w))
                        if (f == 1 && w == 2) pluginName = Encoding.UTF8.GetString(p.Bytes());
                        else if (f == 2 && w == 2) content = p.Bytes();
                        else p.Skip(w);
                    contents.Plugins.Add(new PluginEvent(tag, step, pluginName, content));
                }
            }
        }
    }

    private static byte[]? FirstMessage(byte[] message, int field)
    {
        var reader = new ProtoReader(message);
        while (reader.Next(out var f, out var w))
            if (f == field && w == 2) return reader.Bytes();
            else reader.Skip(w);
        return null;
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
                case 2:
                    // Read the length first: "_position += Varint()" would add it to the position before the varint.
                    var length = (int)Varint();
                    _position += length;
                    break;
                case 5: _position += 4; break;
                default: throw new InvalidDataException($"Unsupported protobuf wire type {wire}.");
            }
        }
    }
}
