using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using System.Text.Json;
using Google.Protobuf;
using Lightning.IO;

namespace Lightning.Loggers;

/// <summary>
/// The entry of TensorBoard's hparams plugin for one run, as PyTorch's <c>SummaryWriter.add_hparams</c> writes it: three
/// summaries (experiment, session start with the hyperparameters, session end with the status) in an event file of the
/// run's folder. The experiment names the run's metrics, whose values TensorBoard takes from the run's scalars.
/// </summary>
internal static class HparamsEvents
{
    // tensorboard/plugins/hparams/plugin_data.proto and api.proto field numbers.
    private const int PluginVersion = 0;

    /// <summary>Writes a complete event file (temporary file, renamed) holding the entry.</summary>
    public static void Write(string logDir, IReadOnlyDictionary<string, object?> hparams, IEnumerable<string> metrics, RunStatus status, long step)
    {
        Directory.CreateDirectory(logDir);
        var now = DateTimeOffset.UtcNow;
        var file = Path.Combine(logDir, string.Create(CultureInfo.InvariantCulture,
            $"events.out.tfevents.{now.ToUnixTimeSeconds()}.{Environment.MachineName}.{Environment.ProcessId}.hparams"));
        var seconds = now.ToUnixTimeMilliseconds() / 1000.0;
        var flat = Flatten(hparams);
        DurableFile.Write(file, stream =>
        {
            Record(stream, Event(seconds, 0, fileVersion: "brain.Event:2"));
            Record(stream, Event(seconds, step, summary: Summary("_hparams_/experiment", Plugin(2, Experiment(flat.Keys, metrics)))));
            Record(stream, Event(seconds, step, summary: Summary("_hparams_/session_start_info", Plugin(3, SessionStart(flat, seconds)))));
            Record(stream, Event(seconds, step, summary: Summary("_hparams_/session_end_info", Plugin(4, SessionEnd(status, seconds)))));
        });
    }

    /// <summary>Nested hyperparameters as dotted names, values as numbers, booleans or text (TensorBoard's kinds).</summary>
    private static SortedDictionary<string, object> Flatten(IReadOnlyDictionary<string, object?> hparams)
    {
        var flat = new SortedDictionary<string, object>(StringComparer.Ordinal);
        void Add(string name, object? value)
        {
            switch (value)
            {
                case null: flat[name] = "None"; break;
                case bool b: flat[name] = b; break;
                case string s: flat[name] = s; break;
                case JsonElement { ValueKind: JsonValueKind.Number } n: flat[name] = n.GetDouble(); break;
                case JsonElement { ValueKind: JsonValueKind.True or JsonValueKind.False } b: flat[name] = b.GetBoolean(); break;
                case JsonElement { ValueKind: JsonValueKind.String } s: flat[name] = s.GetString()!; break;
                case JsonElement e: flat[name] = e.ToString(); break;
                case IReadOnlyDictionary<string, object?> nested:
                    foreach (var (key, inner) in nested) Add($"{name}/{key}", inner);
                    break;
                case IConvertible c when value is not char && value.GetType().IsPrimitive: flat[name] = c.ToDouble(CultureInfo.InvariantCulture); break;
                default: flat[name] = Convert.ToString(value, CultureInfo.InvariantCulture) ?? ""; break;
            }
        }
        foreach (var (name, value) in hparams) Add(name, value);
        return flat;
    }

    private static ByteString Experiment(IEnumerable<string> hparams, IEnumerable<string> metrics) => Message(o =>
    {
        foreach (var name in hparams) o.Message(4, info => info.String(1, name));
        foreach (var metric in metrics.Order(StringComparer.Ordinal)) o.Message(5, info => info.Message(1, n => n.String(2, metric)));
    });

    private static ByteString SessionStart(SortedDictionary<string, object> hparams, double seconds) => Message(o =>
    {
        foreach (var (name, value) in hparams)
            o.Message(1, entry =>
            {
                entry.String(1, name);
                entry.Message(2, v =>
                {
                    switch (value)
                    {
                        case double d: v.Double(2, d); break;
                        case bool b: v.Bool(4, b); break;
                        default: v.String(3, (string)value); break;
                    }
                });
            });
        o.Double(5, seconds);
    });

    private static ByteString SessionEnd(RunStatus status, double seconds) => Message(o =>
    {
        // hparams api.proto Status: STATUS_SUCCESS = 1, STATUS_FAILURE = 2.
        o.Int(1, status == RunStatus.Success ? 1 : 2);
        o.Double(2, seconds);
    });

    /// <summary>HParamsPluginData with its version and one of experiment (2), session start (3) or session end (4).</summary>
    private static ByteString Plugin(int field, ByteString data) => Message(o =>
    {
        o.Int(1, PluginVersion);
        o.Bytes(field, data);
    });

    private static ByteString Summary(string tag, ByteString pluginContent) => Message(summary => summary.Message(1, value =>
    {
        value.String(1, tag);
        value.Message(9, metadata => metadata.Message(1, plugin =>
        {
            plugin.String(1, "hparams");
            plugin.Bytes(2, pluginContent);
        }));
    }));

    private static ByteString Event(double wallTime, long step, string? fileVersion = null, ByteString? summary = null) => Message(o =>
    {
        o.Double(1, wallTime);
        if (step != 0) o.Long(2, step);
        if (fileVersion is not null) o.String(3, fileVersion);
        if (summary is not null) o.Bytes(5, summary);
    });

    /// <summary>TFRecord framing: length, masked CRC-32C of the length, data, masked CRC-32C of the data.</summary>
    private static void Record(Stream stream, ByteString data)
    {
        Span<byte> header = stackalloc byte[12];
        BinaryPrimitives.WriteUInt64LittleEndian(header, (ulong)data.Length);
        BinaryPrimitives.WriteUInt32LittleEndian(header[8..], MaskedCrc(header[..8]));
        stream.Write(header);
        stream.Write(data.Span);
        Span<byte> footer = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(footer, MaskedCrc(data.Span));
        stream.Write(footer);
    }

    private static uint MaskedCrc(ReadOnlySpan<byte> data)
    {
        uint crc = 0xFFFFFFFF;
        foreach (var b in data) crc = BitOperations.Crc32C(crc, b);
        crc ^= 0xFFFFFFFF;
        return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
    }

    private static ByteString Message(Action<Writer> write)
    {
        using var buffer = new MemoryStream();
        var output = new CodedOutputStream(buffer);
        write(new Writer(output));
        output.Flush();
        return ByteString.CopyFrom(buffer.ToArray());
    }

    /// <summary>Protobuf fields by number, for the few messages above.</summary>
    private readonly struct Writer(CodedOutputStream output)
    {
        public void String(int field, string value) { output.WriteTag(field, WireFormat.WireType.LengthDelimited); output.WriteString(value); }
        public void Bytes(int field, ByteString value) { output.WriteTag(field, WireFormat.WireType.LengthDelimited); output.WriteBytes(value); }
        public void Message(int field, Action<Writer> write) => Bytes(field, HparamsEvents.Message(write));
        public void Double(int field, double value) { output.WriteTag(field, WireFormat.WireType.Fixed64); output.WriteDouble(value); }
        public void Bool(int field, bool value) { output.WriteTag(field, WireFormat.WireType.Varint); output.WriteBool(value); }
        public void Int(int field, int value) { output.WriteTag(field, WireFormat.WireType.Varint); output.WriteInt32(value); }
        public void Long(int field, long value) { output.WriteTag(field, WireFormat.WireType.Varint); output.WriteInt64(value); }
    }
}
