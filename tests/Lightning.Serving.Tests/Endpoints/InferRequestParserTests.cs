using System.Text;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Lightning.Serving.Tests.Endpoints;

/// <summary>The one-pass reader and the document parser accept the same bodies and read them the same way.</summary>
public sealed class InferRequestParserTests
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

            var fast = InferRequestParser.TryParseFast(bytes);

            Assert.NotNull(fast);
            AssertSame(InferRequestParser.ParseDocument(bytes), fast);
        }
    }

    [Theory]
    [InlineData("[ 1 , -2.5e1,0.125 ,\n3E-2\t]", 4)]
    [InlineData("[0.84147096,-0.7568025,1e38,-0]", 4)]
    [InlineData("[1.00000000000000000000001,2]", 2)]
    [InlineData("[0.1234567890123456789012,1e-30,3.4028235E+38,123456789012345678901234,-7.0E+0,2e0001]", 6)]
    [InlineData("[]", 0)]
    public void Parse_FlatNumberArrays_ScannedAsTheDocumentParserReadsThem(string data, int count)
    {
        var body = Encoding.UTF8.GetBytes($$"""{"inputs":[{"name":"x","shape":[{{count}}],"datatype":"FP32","data":{{data}}}],"id":"after"}""");

        var fast = InferRequestParser.TryParseFast(body);

        Assert.NotNull(fast);
        Assert.Equal("after", fast.Id);
        AssertSame(InferRequestParser.ParseDocument(body), fast);
    }

    [Fact]
    public void Parse_DecimalsOfEveryDigitCount_ScannedBitForBitAsTheDocumentParserReadsThem()
    {
        // The scanner takes digits eight and four at a time: every run length from 1 to 24 digits, on both sides of the
        // point, ending at every offset (and at the array's end), must read as the general parser reads it.
        var random = new Random(19);
        var numbers = new List<string>();
        for (int intDigits = 1; intDigits <= 24; intDigits++)
            for (int fracDigits = 0; fracDigits <= 24; fracDigits++)
            {
                var text = new StringBuilder();
                if (random.Next(2) == 0) text.Append('-');
                text.Append((char)('1' + random.Next(9)));
                for (int d = 1; d < intDigits; d++) text.Append((char)('0' + random.Next(10)));
                if (fracDigits > 0) text.Append('.');
                for (int d = 0; d < fracDigits; d++) text.Append((char)('0' + random.Next(10)));
                if (random.Next(4) == 0) text.Append("e-").Append(intDigits + random.Next(20));
                numbers.Add(text.ToString());
                numbers.Add("0." + new string('0', fracDigits) + (char)('1' + random.Next(9)));
            }
        var body = Encoding.UTF8.GetBytes($$"""{"inputs":[{"name":"x","shape":[{{numbers.Count}}],"datatype":"FP32","data":[{{string.Join(',', numbers)}}]}]}""");

        var fast = InferRequestParser.TryParseFast(body);

        Assert.NotNull(fast);
        AssertSame(InferRequestParser.ParseDocument(body), fast);
        var last = Encoding.UTF8.GetBytes($$"""{"inputs":[{"name":"x","shape":[1],"datatype":"FP32","data":[0.12345678]}]}""");
        AssertSame(InferRequestParser.ParseDocument(last), InferRequestParser.TryParseFast(last)!);
    }

    [Fact]
    public void Parse_SpareBufferOfThisThread_ReusedAndEveryElementOverwritten()
    {
        var spare = new[] { float.NaN, float.NaN, float.NaN };
        SpareFloats.Give(spare);
        var body = Encoding.UTF8.GetBytes("""{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP32","data":[[1.5,-2,3e-1]]}]}""");

        var parsed = InferRequestParser.Parse(body);

        Assert.Same(spare, parsed.Inputs[0].Data);
        Assert.Equal([1.5f, -2f, 0.3f], spare);
        // Taken: the next request on this thread gets a fresh array.
        Assert.NotSame(spare, InferRequestParser.Parse(body).Inputs[0].Data);
    }

    [Theory]
    [InlineData("[1.2345678:,2]")]
    [InlineData("[12345678/9,2]")]
    [InlineData("[1234:678,2]")]
    [InlineData("[01,2]")]
    [InlineData("[1,2,]")]
    [InlineData("[1.,2]")]
    [InlineData("[1,-]")]
    [InlineData("[1e,2]")]
    [InlineData("[1,2")]
    [InlineData("[1 2]")]
    public void Parse_FlatArraysThatAreNotJson_RejectedLikeTheDocumentParser(string data)
    {
        var body = Encoding.UTF8.GetBytes($$"""{"inputs":[{"name":"x","shape":[2],"datatype":"FP32","data":{{data}}}]}""");

        Assert.Null(InferRequestParser.TryParseFast(body));
        Assert.Throws<InferenceRequestException>(() => InferRequestParser.Parse(body));
    }

    [Fact]
    public void Parse_DataBeforeShape_ReadByTheDocumentParser()
    {
        var body = Encoding.UTF8.GetBytes("""{"inputs":[{"data":[[1,2],[3,4]],"name":"x","datatype":"FP32","shape":[2,2]}]}""");

        Assert.Null(InferRequestParser.TryParseFast(body));
        var request = InferRequestParser.Parse(body);

        var input = Assert.Single(request.Inputs);
        Assert.Equal([2L, 2L], input.Shape);
        Assert.Equal(TensorElementType.Float, input.ElementType);
        Assert.Equal([1f, 2f, 3f, 4f], (float[])input.Data);
    }

    [Fact]
    public void Parse_ShapeLargerThanTheBody_RejectedWithoutAllocatingIt()
    {
        var body = Encoding.UTF8.GetBytes("""{"inputs":[{"name":"x","shape":[4000000000000],"datatype":"FP32","data":[1]}]}""");

        Assert.Null(InferRequestParser.TryParseFast(body));
        var error = Assert.Throws<InferenceRequestException>(() => InferRequestParser.Parse(body));
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

            var fast = InferRequestParser.TryParseFast(bytes);
            InferRequest? document = null;
            try
            {
                document = InferRequestParser.ParseDocument(bytes);
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

    // BYTES elements are byte arrays: compare their contents, not their references.
    private static IEnumerable<object> Elements(Array data) =>
        data.Cast<object>().Select(e => e is byte[] bytes ? Convert.ToHexString(bytes) : e);

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
            Assert.Equal(Elements(expected.Inputs[i].Data), Elements(actual.Inputs[i].Data));
        }
    }
}
