using System.Text;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Lightning.Serving.Tests.Endpoints;

/// <summary>The response writer writes what the serializer would.</summary>
public sealed class InferResponseWriterTests
{
    [Fact]
    public void WriteResponse_EveryDatatype_WritesWhatTheSerializerWrites()
    {
        InferenceTensor[] outputs =
        [
            new("out 'ä'\"", TensorElementType.Float, [2, 3], new[] { 1.5f, -0f, float.NaN, float.PositiveInfinity, float.NegativeInfinity, 3.4028235e38f }),
            new("d", TensorElementType.Double, [2], new[] { 0.1, double.NaN }),
            new("l", TensorElementType.Int64, [2], new[] { long.MinValue, long.MaxValue }),
            new("i", TensorElementType.Int32, [1], new[] { -7 }),
            new("s", TensorElementType.Int16, [1], new short[] { -300 }),
            new("sb", TensorElementType.Int8, [1], new sbyte[] { -128 }),
            new("ul", TensorElementType.UInt64, [1], new[] { ulong.MaxValue }),
            new("ui", TensorElementType.UInt32, [1], new[] { uint.MaxValue }),
            new("us", TensorElementType.UInt16, [1], new ushort[] { 65535 }),
            new("u8", TensorElementType.UInt8, [3], new byte[] { 0, 1, 255 }),
            new("b", TensorElementType.Bool, [2], new[] { true, false }),
            new("empty", TensorElementType.Float, [0, 4], Array.Empty<float>()),
        ];
        foreach (var id in new[] { null, "req <1>" })
        {
            var expected = JsonSerializer.Serialize(new Dictionary<string, object?>
            {
                ["model_name"] = "m/1",
                ["id"] = id,
                ["outputs"] = outputs.Select(o => new Dictionary<string, object>
                {
                    ["name"] = o.Name,
                    ["shape"] = o.Shape,
                    ["datatype"] = o.Datatype,
                    // UINT8 as numbers; checked by element type, since an sbyte[] passes for a byte[] at run time.
                    ["data"] = o.ElementType == TensorElementType.UInt8 ? Array.ConvertAll((byte[])o.Data, b => (int)b) : o.Data,
                }).ToArray(),
            }.Where(p => p.Value is not null).ToDictionary(), InferenceJson.SerializerOptions);
            var buffer = new System.Buffers.ArrayBufferWriter<byte>();

            using (var writer = new Utf8JsonWriter(buffer, InferenceJson.WriterOptions))
                InferResponseWriter.Write(writer, "m/1", id, outputs);

            Assert.Equal(expected, Encoding.UTF8.GetString(buffer.WrittenSpan));
        }
    }
}
