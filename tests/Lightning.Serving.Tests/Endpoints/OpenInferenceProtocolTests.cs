using System.Buffers.Binary;
using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Lightning.Serving.Tests.Inference;
using Lightning.Testing;

namespace Lightning.Serving.Tests.Endpoints;

/// <summary>The protocol's routes, every datatype over JSON and the binary tensor data extension, against real ONNX Runtime sessions.</summary>
public sealed class OpenInferenceProtocolTests : IAsyncLifetime
{
    public static readonly TheoryData<string, string> JsonData = new()
    {
        { "BOOL", "[true,false,true,false,false,true]" },
        { "UINT8", "[0,1,2,200,254,255]" },
        { "UINT16", "[0,1,2,60000,65534,65535]" },
        { "UINT32", "[0,1,2,4000000000,7,4294967295]" },
        { "UINT64", "[0,1,2,18446744073709551615,7,8]" },
        { "INT8", "[-128,-1,0,1,2,127]" },
        { "INT16", "[-32768,-1,0,1,2,32767]" },
        { "INT32", "[-2147483648,-1,0,1,2,2147483647]" },
        { "INT64", "[-9223372036854775808,-1,0,1,2,9223372036854775807]" },
        { "FP16", "[0.5,-1.25,2,65504,-0.125,1024]" },
        { "BF16", "[0.5,-1.25,2,65536,-0.125,1024]" },
        { "FP32", "[0.5,-1.25,2,3.4028235E+38,-0.125,1E-45]" },
        { "FP64", "[0.5,-1.25,2,1.7976931348623157E+308,-0.125,5E-324]" },
        { "BYTES", "[\"a\",\"\",\"héllo\",\"\\u0000x\",\"tab\\t\",\"\U0001F600\"]" },
    };

    private readonly TempDirectory _dir = new();
    private InferenceTestServer _server = null!;

    public async Task InitializeAsync()
    {
        var linear = OnnxTestModels.Linear(_dir.Combine("linear.onnx"));
        var two = OnnxGraphs.TwoOutputs(_dir.Combine("two.onnx"));
        var datatypes = JsonData.Select(row => (string)row[0]).ToList();
        _server = await InferenceTestServer.StartAsync(b =>
        {
            b.AddModel("linear", linear, o => o.WatchForChanges = false);
            b.AddModel("two", two, o => o.WatchForChanges = false);
            foreach (var datatype in datatypes)
                b.AddModel("id_" + datatype.ToLowerInvariant(), OnnxGraphs.Identity(_dir.Combine(datatype + ".onnx"), datatype), o => o.WatchForChanges = false);
        });
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _dir.Dispose();
    }

    [Fact]
    public async Task ServerMetadata_Get_ReturnsNameVersionAndExtensions()
    {
        var (response, body) = await _server.GetAsync("/v2");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("lightning-serving", body!["name"]!.GetValue<string>());
        Assert.Matches(@"^\d+\.\d+\.\d+$", body["version"]!.GetValue<string>());
        var extensions = body["extensions"]!.AsArray().Select(e => e!.GetValue<string>()).ToList();
        Assert.Contains("binary_tensor_data", extensions);
        Assert.Contains("parameters", extensions);
    }

    [Fact]
    public async Task VersionRoutes_Version1_ServeTheModel()
    {
        var (metadata, metadataBody) = await _server.GetAsync("/v2/models/linear/versions/1");
        var (ready, readyBody) = await _server.GetAsync("/v2/models/linear/versions/1/ready");
        var (infer, inferBody) = await _server.PostAsync("/v2/models/linear/versions/1/infer", OnnxTestModels.InferBody([1, 2, 3, 4], 1));

        Assert.Equal(HttpStatusCode.OK, metadata.StatusCode);
        Assert.Equal("[\"1\"]", metadataBody!["versions"]!.ToJsonString());
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.True(readyBody!["ready"]!.GetValue<bool>());
        Assert.Equal(HttpStatusCode.OK, infer.StatusCode);
        Assert.Equal("1", inferBody!["model_version"]!.GetValue<string>());
        Approx.AssertClose(OnnxTestModels.Reference(_dir.Combine("linear.onnx"), [1, 2, 3, 4], [1, 4]), OnnxTestModels.Floats(inferBody["outputs"]![0]!["data"]));
    }

    [Theory]
    [InlineData("/v2/models/linear/versions/2")]
    [InlineData("/v2/models/linear/versions/2/ready")]
    public async Task VersionRoutes_UnknownVersion_Return404NamingTheVersions(string path)
    {
        var (response, body) = await _server.GetAsync(path);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Contains("model 'linear' has no version '2'; its versions are ['1']", body!["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task VersionRoutes_InferUnknownVersion_Returns404()
    {
        var (response, body) = await _server.PostAsync("/v2/models/linear/versions/7/infer", OnnxTestModels.InferBody([1, 2, 3, 4], 1));

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Contains("no version '7'", body!["error"]!.GetValue<string>());
    }

    [Theory]
    [MemberData(nameof(JsonData))]
    public async Task Infer_EachDatatypeAsJson_RoundTripsThroughOnnxRuntime(string datatype, string data)
    {
        var (response, body) = await _server.PostAsync($"/v2/models/id_{datatype.ToLowerInvariant()}/infer",
            $$"""{"inputs":[{"name":"x","shape":[2,3],"datatype":"{{datatype}}","data":{{data}}}]}""");

        Assert.True(response.StatusCode == HttpStatusCode.OK, body?.ToJsonString());
        var output = body!["outputs"]![0]!;
        Assert.Equal(datatype, output["datatype"]!.GetValue<string>());
        Assert.Equal("[2,3]", output["shape"]!.ToJsonString());
        if (datatype == "BYTES")
            Assert.Equal(JsonNode.Parse(data)!.AsArray().Select(e => e!.GetValue<string>()), output["data"]!.AsArray().Select(e => e!.GetValue<string>()));
        else
            Assert.Equal(JsonNode.Parse(data)!.ToJsonString(), output["data"]!.ToJsonString());
    }

    [Fact]
    public async Task Infer_Fp16ValueOverItsRange_Returns400NamingTheElement()
    {
        var (response, body) = await _server.PostAsync("/v2/models/id_fp16/infer",
            """{"inputs":[{"name":"x","shape":[1,3],"datatype":"FP16","data":[1,70000,2]}]}""");

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("data element 1 is 70000, not a FP16 value", body!["error"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("FP32")]
    [InlineData("FP16")]
    [InlineData("INT64")]
    [InlineData("BOOL")]
    [InlineData("BYTES")]
    public async Task Infer_BinaryTensorData_RoundTripsBytesExactly(string datatype)
    {
        var raw = BinaryElements(datatype, 6);
        var header = $$$"""{"inputs":[{"name":"x","shape":[2,3],"datatype":"{{{datatype}}}","parameters":{"binary_data_size":{{{raw.Length}}}}}],"outputs":[{"name":"y","parameters":{"binary_data":true}}]}""";

        var response = await PostBinaryAsync($"/v2/models/id_{datatype.ToLowerInvariant()}/infer", header, raw);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/octet-stream", response.Content.Headers.ContentType!.MediaType);
        var bytes = await response.Content.ReadAsByteArrayAsync();
        int jsonLength = int.Parse(response.Headers.GetValues("Inference-Header-Content-Length").Single());
        var json = JsonNode.Parse(bytes.AsSpan(0, jsonLength))!;
        var output = json["outputs"]![0]!;
        Assert.Null(output["data"]);
        Assert.Equal(raw.Length, output["parameters"]!["binary_data_size"]!.GetValue<long>());
        Assert.Equal(Convert.ToHexString(raw), Convert.ToHexString(bytes.AsSpan(jsonLength)));
    }

    [Fact]
    public async Task Infer_BinaryDataOutputParameter_SendsEveryOutputAsBinaryUnlessOneSaysOtherwise()
    {
        var body = """{"parameters":{"binary_data_output":true},"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1.5,-2]}],"outputs":[{"name":"y"},{"name":"z","parameters":{"binary_data":false}}]}""";
        using var content = new StringContent(body, Encoding.UTF8, "application/json");

        var response = await _server.Client.PostAsync("/v2/models/two/infer", content);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var bytes = await response.Content.ReadAsByteArrayAsync();
        int jsonLength = int.Parse(response.Headers.GetValues("Inference-Header-Content-Length").Single());
        var json = JsonNode.Parse(bytes.AsSpan(0, jsonLength))!;
        Assert.Equal(8, json["outputs"]![0]!["parameters"]!["binary_data_size"]!.GetValue<long>());
        Assert.Equal("[-1.5,2]", json["outputs"]![1]!["data"]!.ToJsonString());
        var y = bytes.AsSpan(jsonLength);
        Assert.Equal([1.5f, -2f], [BinaryPrimitives.ReadSingleLittleEndian(y), BinaryPrimitives.ReadSingleLittleEndian(y[4..])]);
    }

    [Fact]
    public async Task Infer_BinaryInputOfTheWrongSize_Returns400NamingBothSizes()
    {
        var header = """{"inputs":[{"name":"x","shape":[2,3],"datatype":"FP32","parameters":{"binary_data_size":20}}]}""";

        var response = await PostBinaryAsync("/v2/models/id_fp32/infer", header, new byte[20]);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("input byte size mismatch for input 'x': shape [2, 3] of FP32 needs 24 bytes, got 20",
            JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task Infer_HeaderLengthPastTheBody_Returns400()
    {
        using var content = new ByteArrayContent(Encoding.UTF8.GetBytes("{}"));
        content.Headers.Add("Inference-Header-Content-Length", "99");

        var response = await _server.Client.PostAsync("/v2/models/id_fp32/infer", content);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("Inference-Header-Content-Length = '99' is not allowed", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Infer_OutputsSelection_ReturnsOnlyTheNamedOutputInOrder()
    {
        var (response, body) = await _server.PostAsync("/v2/models/two/infer",
            """{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[3,-4]}],"outputs":[{"name":"z"}]}""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var output = Assert.Single(body!["outputs"]!.AsArray());
        Assert.Equal("z", output!["name"]!.GetValue<string>());
        Assert.Equal("[-3,4]", output["data"]!.ToJsonString());
    }

    [Fact]
    public async Task Infer_UnknownRequestParameters_AreIgnored()
    {
        var (response, _) = await _server.PostAsync("/v2/models/two/infer",
            """{"parameters":{"priority":1,"note":"x","flag":true},"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[3,-4],"parameters":{"shared_memory_region":"none"}}]}""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Infer_TimeoutParameterNotANumber_Returns400NamingIt()
    {
        var (response, body) = await _server.PostAsync("/v2/models/two/infer",
            """{"parameters":{"timeout":"soon"},"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[3,-4]}]}""");

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("parameter \"timeout\" = \"soon\" is not allowed", body!["error"]!.GetValue<string>());
    }

    private async Task<HttpResponseMessage> PostBinaryAsync(string path, string header, byte[] raw)
    {
        var json = Encoding.UTF8.GetBytes(header);
        using var content = new ByteArrayContent([.. json, .. raw]);
        content.Headers.ContentType = new("application/octet-stream");
        content.Headers.Add("Inference-Header-Content-Length", json.Length.ToString());
        return await _server.Client.PostAsync(path, content);
    }

    /// <summary>Distinct test values in the binary layout of <paramref name="datatype"/>.</summary>
    private static byte[] BinaryElements(string datatype, int count)
    {
        var bytes = new List<byte>();
        for (int i = 0; i < count; i++)
        {
            switch (datatype)
            {
                case "FP32": bytes.AddRange(BitConverter.GetBytes(i * 1.5f - 2)); break;
                case "FP16": bytes.AddRange(BitConverter.GetBytes((Half)(i * 0.25 - 1))); break;
                case "INT64": bytes.AddRange(BitConverter.GetBytes(long.MinValue + i * 3L)); break;
                case "BOOL": bytes.Add((byte)(i % 2)); break;
                case "BYTES":
                    var text = new byte[i * 2];
                    for (int k = 0; k < text.Length; k++) text[k] = (byte)(250 + k % 6);
                    bytes.AddRange(BitConverter.GetBytes(text.Length));
                    bytes.AddRange(text);
                    break;
            }
        }
        return [.. bytes];
    }
}
