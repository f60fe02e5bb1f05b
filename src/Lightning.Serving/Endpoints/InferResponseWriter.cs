using System.Text.Json;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Lightning.Serving;

/// <summary>Writes the v2 infer response body with a <see cref="Utf8JsonWriter"/>, without the serializer.</summary>
internal static class InferResponseWriter
{
    /// <summary>
    /// Writes the v2 infer response body, <c>{"model_name", "id" (unless null), "outputs": [{"name", "shape", "datatype",
    /// "data"}]}</c>, exactly as the serializer would with <see cref="InferenceJson.SerializerOptions"/> (UINT8 as numbers, not base64;
    /// NaN and infinities as named literals), but without its per-call type lookups, boxing and copies.
    /// </summary>
    public static void Write(Utf8JsonWriter writer, string modelName, string? id, IReadOnlyList<InferenceTensor> outputs) =>
        Write(writer, modelName, null, id, outputs, null);

    /// <summary>
    /// Writes the response body's JSON; an output whose <paramref name="binary"/> flag is set carries
    /// <c>"parameters": {"binary_data_size": n}</c> instead of <c>data</c>, its bytes following the JSON.
    /// </summary>
    public static void Write(Utf8JsonWriter writer, string modelName, string? modelVersion, string? id, IReadOnlyList<InferenceTensor> outputs, bool[]? binary)
    {
        writer.WriteStartObject();
        writer.WriteString("model_name"u8, modelName);
        if (modelVersion is not null) writer.WriteString("model_version"u8, modelVersion);
        if (id is not null) writer.WriteString("id"u8, id);
        writer.WriteStartArray("outputs"u8);
        for (int o = 0; o < outputs.Count; o++)
        {
            var output = outputs[o];
            writer.WriteStartObject();
            writer.WriteString("name"u8, output.Name);
            writer.WriteStartArray("shape"u8);
            foreach (var dim in output.Shape) writer.WriteNumberValue(dim);
            writer.WriteEndArray();
            writer.WriteString("datatype"u8, output.Datatype);
            if (binary is not null && binary[o])
            {
                writer.WriteStartObject("parameters"u8);
                writer.WriteNumber("binary_data_size"u8, BinaryTensorData.Length(output));
                writer.WriteEndObject();
                writer.WriteEndObject();
                continue;
            }
            writer.WriteStartArray("data"u8);
            WriteData(writer, output.ElementType, output.Data);
            writer.WriteEndArray();
            writer.WriteEndObject();
        }
        writer.WriteEndArray();
        writer.WriteEndObject();
    }

    // By element type, not by array type: the runtime lets a ulong[] pass as a long[], a byte[] as an sbyte[] and so on.
    private static void WriteData(Utf8JsonWriter writer, TensorElementType type, Array data)
    {
        switch (type)
        {
            case TensorElementType.Float:
                foreach (var v in (float[])data)
                    if (float.IsFinite(v)) writer.WriteNumberValue(v);
                    else WriteNamedLiteral(writer, v);
                break;
            case TensorElementType.Double:
                foreach (var v in (double[])data)
                    if (double.IsFinite(v)) writer.WriteNumberValue(v);
                    else WriteNamedLiteral(writer, v);
                break;
            case TensorElementType.Int64: foreach (var v in (long[])data) writer.WriteNumberValue(v); break;
            case TensorElementType.Int32: foreach (var v in (int[])data) writer.WriteNumberValue(v); break;
            case TensorElementType.Int16: foreach (var v in (short[])data) writer.WriteNumberValue(v); break;
            case TensorElementType.Int8: foreach (var v in (sbyte[])data) writer.WriteNumberValue(v); break;
            case TensorElementType.UInt64: foreach (var v in (ulong[])data) writer.WriteNumberValue(v); break;
            case TensorElementType.UInt32: foreach (var v in (uint[])data) writer.WriteNumberValue(v); break;
            case TensorElementType.UInt16: foreach (var v in (ushort[])data) writer.WriteNumberValue(v); break;
            case TensorElementType.UInt8: foreach (var v in (byte[])data) writer.WriteNumberValue(v); break;
            case TensorElementType.Bool: foreach (var v in (bool[])data) writer.WriteBooleanValue(v); break;
            case TensorElementType.Float16:
                foreach (var v in (Microsoft.ML.OnnxRuntime.Float16[])data)
                    if (Microsoft.ML.OnnxRuntime.Float16.IsFinite(v)) writer.WriteNumberValue((float)v);
                    else WriteNamedLiteral(writer, (float)v);
                break;
            case TensorElementType.BFloat16:
                foreach (var v in (Microsoft.ML.OnnxRuntime.BFloat16[])data)
                    if (Microsoft.ML.OnnxRuntime.BFloat16.IsFinite(v)) writer.WriteNumberValue((float)v);
                    else WriteNamedLiteral(writer, (float)v);
                break;
            case TensorElementType.String:
                foreach (var v in (byte[][])data)
                    // JSON strings are Unicode; bytes that are not UTF-8 come out with replacement characters here and
                    // exactly under the binary tensor data extension.
                    if (System.Text.Unicode.Utf8.IsValid(v)) writer.WriteStringValue(v);
                    else writer.WriteStringValue(System.Text.Encoding.UTF8.GetString(v));
                break;
            default: throw new NotSupportedException($"An output has element type {TensorTypes.ToV2(type)}, which has no JSON form here.");
        }
    }

    private static void WriteNamedLiteral(Utf8JsonWriter writer, double value) =>
        writer.WriteStringValue(double.IsNaN(value) ? "NaN"u8 : value > 0 ? "Infinity"u8 : "-Infinity"u8);
}
