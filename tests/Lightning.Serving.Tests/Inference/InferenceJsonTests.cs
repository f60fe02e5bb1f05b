using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Lightning.Serving.Tests.Inference;

/// <summary>The one-pass reader and the document parser accept the same bodies and read them the same way.</summary>
public sealed class InferenceJsonTests
{
    private static readonly string[] ValidBodies =
    [
        """{"id":"7","inputs":[{"name":"input","shape":[2,3],"datatype":"FP32","data":[1,2.5,-3e2,4,5,6]}],"outputs":[{"name":"output"}]}""",
        """{"inputs":[{"name":"a","shape":[2,2],"datatype":"INT64","data":[[1,2],[3,-4]]},{"name":"b","shape":[3],"datatype":"BOOL","data":[true,0,1]}]}""",
        """{"parameters":{"x":1},"inputs":[{"name":"u","shape":[],"datatype":"UINT8","data":255,"parameters":{"y":[1]}}],"id":null,"outputs":null}""",
        """{"inputs":[{"name":"d","shape":[0,4],"datatype":"FP64","data":[]}]}""",
        """{"inputs":[{"name":"f","shape":[3,2],"datatype":"FP32","data":[1,[2,3],[[4]],5,6]}]}""",
        """{"inputs":[{"name":"f","shape":[2],"datatype":"FP32","data":[3.4e38,-1e-45]}]}""",
    ];

    [Fact]
    public void Parse_UsualKeyOrder_FastPathReadsWhatTheDocumentParserReads()
    {
        foreach (var body in ValidBodies)
        {
            var bytes = Encoding.UTF8.GetBytes(body);

            var fast = InferenceJson.TryParseFast(bytes);

            Assert.NotNull(fast);
            AssertSame(InferenceJson.ParseDocument(bytes), fast);
        }
    }

    [Fact]
    public void Parse_DataBeforeShape_ReadByTheDocumentParser()
    {
        var body = Encoding.UTF8.GetBytes("""{"inputs":[{"data":[[1,2],[3,4]],"name":"x","datatype":"FP32","shape":[2,2]}]}""");

        Assert.Null(InferenceJson.TryParseFast(body));
        var request = InferenceJson.Parse(body);

        var input = Assert.Single(request.Inputs);
        Assert.Equal([2L, 2L], input.Shape);
        Assert.Equal(TensorElementType.Float, input.ElementType);
        Assert.Equal([1f, 2f, 3f, 4f], (float[])input.Data);
    }

    [Fact]
    public void Parse_ShapeLargerThanTheBody_RejectedWithoutAllocatingIt()
    {
        var body = Encoding.UTF8.GetBytes("""{"inputs":[{"name":"x","shape":[4000000000000],"datatype":"FP32","data":[1]}]}""");

        Assert.Null(InferenceJson.TryParseFast(body));
        var error = Assert.Throws<InferenceRequestException>(() => InferenceJson.Parse(body));
        Assert.Contains("input 'x' has shape [4000000000000]", error.Message);
    }

    [Fact]
    public void Parse_RandomCorruptions_BothPathsAgree()
    {
        var random = new Random(5);
        for (int n = 0; n < 3000; n++)
        {
            var bytes = Encoding.UTF8.GetBytes(ValidBodies[n % ValidBodies.Length]);
            for (var k = random.Next(1, 3); k > 0; k--)
                bytes[random.Next(bytes.Length)] = (byte)"0123456789[]{},:\"-.e tfnFPINT"[random.Next(29)];

            var fast = InferenceJson.TryParseFast(bytes);
            InferRequest? document = null;
            try
            {
                document = InferenceJson.ParseDocument(bytes);
            }
            catch (InferenceRequestException)
            {
                // Only the document parser explains a bad body; the fast path must have passed it on.
            }

            var body = Encoding.UTF8.GetString(bytes);
            if (fast is null) continue;
            Assert.True(document is not null, $"the fast path accepted a body the document parser rejects: {body}");
            AssertSame(document!, fast);
        }
    }

    [Fact]
    public void TryParseShortDecimal_ReadsBitForBitWhatTheReaderReads()
    {
        var random = new Random(11);
        string[] formats = ["R", "G9", "G17", "E6", "F3"];
        var texts = new List<string>
        {
            "0", "-0", "1", "-1", "0.1", "1e22", "1e23", "1e-22", "1e-23", "9007199254740992", "9007199254740993",
            "1234567890123456789", "12345678901234567890", "0.000000000000000000001", "3.4028235e38", "-1e-45", "2.5E+3", "7e0",
        };
        for (int n = 0; n < 20000; n++)
        {
            double value = random.Next(3) switch
            {
                0 => (float)(random.NextDouble() * 2 - 1),
                1 => random.NextDouble() * Math.Pow(10, random.Next(-30, 30)),
                _ => random.Next(-100000, 100000),
            };
            var format = formats[random.Next(formats.Length)];
            texts.Add(n % 2 == 0 ? ((float)value).ToString(format, CultureInfo.InvariantCulture) : value.ToString(format, CultureInfo.InvariantCulture));
        }
        int fast = 0;
        foreach (var text in texts)
        {
            var bytes = Encoding.UTF8.GetBytes(text);
            var reader = new Utf8JsonReader(bytes);
            Assert.True(reader.Read(), text);
            Assert.True(reader.TryGetDouble(out var expected), text);

            if (!InferenceJson.TryParseShortDecimal(bytes, out var actual)) continue;

            fast++;
            Assert.True(BitConverter.DoubleToInt64Bits(expected) == BitConverter.DoubleToInt64Bits(actual), $"{text}: {actual:R}, not {expected:R}");
        }
        // Most of these take the short path, so the comparison above means something.
        Assert.True(fast > texts.Count / 2, $"{fast} of {texts.Count}");
        Assert.True(InferenceJson.TryParseShortDecimal("0.84147096"u8, out _));
    }

    [Fact]
    public void TensorTypes_NamesAndSupport_AgreeWithTheTables()
    {
        foreach (var type in Enum.GetValues<TensorElementType>())
        {
            var name = TensorTypes.ToV2(type);

            Assert.Equal(TensorTypes.SupportedDatatypes.Contains(name), TensorTypes.IsSupported(type));
            if (TensorTypes.TryFromV2(name, out var back)) Assert.Equal(type, back);
        }
        foreach (var name in TensorTypes.SupportedDatatypes)
            Assert.True(TensorTypes.TryFromV2(name, out var type) && TensorTypes.ToV2(type) == name, name);
    }

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
                InferenceJson.WriteResponse(writer, "m/1", id, outputs);

            Assert.Equal(expected, Encoding.UTF8.GetString(buffer.WrittenSpan));
        }
    }

    [Fact]
    public void ToOrtValue_EveryDatatype_KeepsTheElementType()
    {
        foreach (var name in TensorTypes.SupportedDatatypes)
        {
            Assert.True(TensorTypes.TryFromV2(name, out var type));
            var tensor = new InferenceTensor("x", type, [2], TensorTypes.Allocate(type, 2));

            using var value = TensorTypes.ToOrtValue(tensor);

            Assert.Equal(type, value.GetTensorTypeAndShape().ElementDataType);
        }
    }

    private static void AssertSame(InferRequest expected, InferRequest actual)
    {
        Assert.Equal(expected.Id, actual.Id);
        Assert.Equal(expected.Outputs, actual.Outputs);
        Assert.Equal(expected.Inputs.Count, actual.Inputs.Count);
        for (int i = 0; i < expected.Inputs.Count; i++)
        {
            Assert.Equal(expected.Inputs[i].Name, actual.Inputs[i].Name);
            Assert.Equal(expected.Inputs[i].ElementType, actual.Inputs[i].ElementType);
            Assert.Equal(expected.Inputs[i].Shape, actual.Inputs[i].Shape);
            Assert.Equal(expected.Inputs[i].Data.Cast<object>(), actual.Inputs[i].Data.Cast<object>());
        }
    }
}
