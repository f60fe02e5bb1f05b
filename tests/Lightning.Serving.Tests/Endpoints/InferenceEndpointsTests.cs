using System.Net;
using System.Text.Json.Nodes;
using Lightning.Serving.Tests.Inference;
using Lightning.Testing;

namespace Lightning.Serving.Tests.Endpoints;

public sealed class InferenceEndpointsTests : IAsyncLifetime
{
    private readonly TempDirectory _dir = new();
    private InferenceTestServer _server = null!;
    private string _linear = "";
    private string _embedding = "";

    public async Task InitializeAsync()
    {
        _linear = OnnxTestModels.Linear(_dir.Combine("linear.onnx"));
        _embedding = OnnxTestModels.Embedding(_dir.Combine("embedding.onnx"));
        _server = await InferenceTestServer.StartAsync(b => b
            .AddModel("linear", _linear, o => o.WatchForChanges = false)
            .AddModel("embedding", _embedding, o => o.WatchForChanges = false),
            o => o.MaxRequestBodySize = 4096);
    }

    public async Task DisposeAsync()
    {
        await _server.DisposeAsync();
        _dir.Dispose();
    }

    [Fact]
    public async Task Live_Running_Returns200WithLiveTrue()
    {
        var (response, body) = await _server.GetAsync("/v2/health/live");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(body!["live"]!.GetValue<bool>());
    }

    [Fact]
    public async Task Ready_AllModelsLoaded_Returns200()
    {
        var (response, body) = await _server.GetAsync("/v2/health/ready");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(body!["live"]!.GetValue<bool>());
        Assert.True(body["ready"]!.GetValue<bool>());
    }

    [Fact]
    public async Task ModelReady_KnownModel_Returns200WithName()
    {
        var (response, body) = await _server.GetAsync("/v2/models/linear/ready");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("linear", body!["name"]!.GetValue<string>());
        Assert.True(body["ready"]!.GetValue<bool>());
    }

    [Fact]
    public async Task ModelReady_UnknownModel_Returns404WithError()
    {
        var (response, body) = await _server.GetAsync("/v2/models/nope/ready");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Contains("'nope'", body!["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task ErrorBody_AsSentOnTheWire_QuotesNamesPlainly()
    {
        var response = await _server.Client.GetAsync("/v2/models/nope");

        // What curl shows: no \u0027 escapes around names.
        Assert.Contains("model 'nope' is not found", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Metadata_KnownModel_ReportsSignatureAndCpuProvider()
    {
        var (response, body) = await _server.GetAsync("/v2/models/linear");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("linear", body!["name"]!.GetValue<string>());
        Assert.Equal("onnx_onnxv1", body["platform"]!.GetValue<string>());
        var input = body["inputs"]![0]!;
        Assert.Equal("input", input["name"]!.GetValue<string>());
        Assert.Equal("FP32", input["datatype"]!.GetValue<string>());
        Assert.Equal("[-1,4]", input["shape"]!.ToJsonString());
        Assert.Equal("[-1,3]", body["outputs"]![0]!["shape"]!.ToJsonString());
        Assert.Equal("CPUExecutionProvider", body["parameters"]!["execution_provider"]!.GetValue<string>());
        Assert.True(body["parameters"]!["dynamic_batching"]!.GetValue<bool>());
    }

    [Theory]
    [InlineData("/v2/models/nope")]
    [InlineData("/v2/models/..%2Flinear.onnx")]
    public async Task Metadata_UnknownModel_Returns404(string path)
    {
        var (response, body) = await _server.GetAsync(path);
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Contains("not found", body!["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task Infer_FlatData_MatchesDirectRunAndEchoesId()
    {
        float[] data = [1, -2, 3, 0.5f, -1, 0, 2, 4];
        var (response, body) = await _server.PostAsync("/v2/models/linear/infer", OnnxTestModels.InferBody(data, 2, id: "42"));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("linear", body!["model_name"]!.GetValue<string>());
        Assert.Equal("42", body["id"]!.GetValue<string>());
        var output = body["outputs"]![0]!;
        Assert.Equal("output", output["name"]!.GetValue<string>());
        Assert.Equal("FP32", output["datatype"]!.GetValue<string>());
        Assert.Equal("[2,3]", output["shape"]!.ToJsonString());
        Approx.AssertClose(OnnxTestModels.Reference(_linear, data, [2, 4]), OnnxTestModels.Floats(output["data"]));
    }

    [Fact]
    public async Task Infer_NestedData_SameAsFlat()
    {
        const string nested = """{"inputs":[{"name":"input","shape":[2,4],"datatype":"FP32","data":[[1,-2,3,0.5],[-1,0,2,4]]}]}""";
        var (response, body) = await _server.PostAsync("/v2/models/linear/infer", nested);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Null(body!["id"]);
        Approx.AssertClose(OnnxTestModels.Reference(_linear, [1, -2, 3, 0.5f, -1, 0, 2, 4], [2, 4]), OnnxTestModels.Floats(body["outputs"]![0]!["data"]));
    }

    [Fact]
    public async Task Infer_Int64Input_ReturnsEmbeddings()
    {
        const string request = """{"inputs":[{"name":"input","shape":[1,5],"datatype":"INT64","data":[0,1,2,3,9]}],"outputs":[{"name":"output"}]}""";
        var (response, body) = await _server.PostAsync("/v2/models/embedding/infer", request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var output = body!["outputs"]![0]!;
        Assert.Equal("[1,5,3]", output["shape"]!.ToJsonString());
        Approx.AssertClose(OnnxTestModels.ReferenceInt64(_embedding, [0, 1, 2, 3, 9], [1, 5]), OnnxTestModels.Floats(output["data"]));
    }

    [Fact]
    public async Task Infer_UnknownModel_Returns404()
    {
        var (response, body) = await _server.PostAsync("/v2/models/missing/infer", OnnxTestModels.InferBody([1, 2, 3, 4], 1));
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Contains("'missing'", body!["error"]!.GetValue<string>());
        Assert.Contains("'linear'", body["error"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("{\"inputs\": [", "malformed JSON")]
    [InlineData("[1, 2]", "JSON object")]
    [InlineData("{}", "no \"inputs\"")]
    [InlineData("""{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32"}]}""", "input 'input' has no \"data\"")]
    [InlineData("""{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,"x",4]}]}""", "data element 2 is \"x\", not a FP32 value")]
    [InlineData("""{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3]}]}""", "shape [1, 4], which needs 4 elements, but \"data\" holds 3")]
    [InlineData("""{"inputs":[{"name":"input","shape":[1,-4],"datatype":"FP32","data":[1,2,3,4]}]}""", "shape element 1 = -4")]
    [InlineData("""{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP99","data":[1,2,3,4]}]}""", "datatype 'FP99'")]
    [InlineData("""{"inputs":[{"name":"other","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}""", "unexpected input 'other'")]
    [InlineData("""{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}],"outputs":[{"name":"nope"}]}""", "unexpected output 'nope'")]
    [InlineData("""{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}],"outputs":[{"name":"output"},{"name":"output"}]}""", "output 'output' already exists")]
    public async Task Infer_BadRequest_Returns400NamingTheProblem(string json, string expected)
    {
        var (response, body) = await _server.PostAsync("/v2/models/linear/infer", json);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains(expected, body!["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task Infer_MissingInput_Returns400NamingIt()
    {
        var (response, body) = await _server.PostAsync("/v2/models/embedding/infer",
            """{"inputs":[{"name":"ids","shape":[1,5],"datatype":"INT64","data":[0,1,2,3,9]}]}""");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("unexpected input 'ids'", body!["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task Infer_WrongShape_Returns400WithExpectedAndReceived()
    {
        var (response, body) = await _server.PostAsync("/v2/models/linear/infer",
            """{"inputs":[{"name":"input","shape":[2,2],"datatype":"FP32","data":[1,2,3,4]}]}""");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = body!["error"]!.GetValue<string>();
        Assert.Contains("input 'input'", error);
        Assert.Contains("expects shape [-1, 4]", error);
        Assert.Contains("has shape [2, 2]", error);
    }

    [Fact]
    public async Task Infer_WrongDatatype_Returns400WithExpectedAndReceived()
    {
        var (response, body) = await _server.PostAsync("/v2/models/linear/infer",
            """{"inputs":[{"name":"input","shape":[1,4],"datatype":"INT64","data":[1,2,3,4]}]}""");
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var error = body!["error"]!.GetValue<string>();
        Assert.Contains("input 'input'", error);
        Assert.Contains("expects datatype FP32", error);
        Assert.Contains("has INT64", error);
    }

    [Fact]
    public async Task Infer_BatchOverMax_Returns400()
    {
        var rows = 33;
        var (response, body) = await _server.PostAsync("/v2/models/linear/infer", OnnxTestModels.InferBody(new float[rows * 4], rows));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("max batch size 32", body!["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task Infer_BodyOverLimit_Returns413()
    {
        var (response, body) = await _server.PostAsync("/v2/models/linear/infer", OnnxTestModels.InferBody(new float[4000], 1000));
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Contains("4096 bytes", body!["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task Infer_BodyWithoutContentLength_ReadInPiecesAndAnswered()
    {
        using var content = new UnsizedContent(OnnxTestModels.InferBody([1, 2, 3, 4], 1), chunk: 7);
        var response = await _server.Client.PostAsync("/v2/models/linear/infer", content);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync());
        Approx.AssertClose(OnnxTestModels.Reference(_linear, [1, 2, 3, 4], [1, 4]), OnnxTestModels.Floats(body!["outputs"]![0]!["data"]));
    }

    [Fact]
    public async Task Infer_BodyWithoutContentLengthOverLimit_Returns413()
    {
        using var content = new UnsizedContent(OnnxTestModels.InferBody(new float[4000], 1000), chunk: 1000);
        var response = await _server.Client.PostAsync("/v2/models/linear/infer", content);

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Contains("4096 bytes", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Infer_BodyWithoutContentLengthOverTheFirstBuffer_ReadWhole()
    {
        // Over 16 KiB (the first buffer when no length is declared), under the default limit.
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModel("linear", _linear, o => o.WatchForChanges = false));
        var json = OnnxTestModels.InferBody([1, 2, 3, 4], 1).Insert(1, $"\"parameters\":{{\"pad\":\"{new string('x', 40_000)}\"}},");
        using var content = new UnsizedContent(json, chunk: 5000);
        var response = await server.Client.PostAsync("/v2/models/linear/infer", content);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var body = JsonNode.Parse(await response.Content.ReadAsStringAsync());
        Approx.AssertClose(OnnxTestModels.Reference(_linear, [1, 2, 3, 4], [1, 4]), OnnxTestModels.Floats(body!["outputs"]![0]!["data"]));
    }

    /// <summary>A body sent without Content-Length, in pieces of <c>chunk</c> bytes.</summary>
    private sealed class UnsizedContent(string json, int chunk) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, System.Net.TransportContext? context)
        {
            var bytes = System.Text.Encoding.UTF8.GetBytes(json);
            for (int i = 0; i < bytes.Length; i += chunk)
            {
                await stream.WriteAsync(bytes.AsMemory(i, Math.Min(chunk, bytes.Length - i)));
                await stream.FlushAsync();
            }
        }

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }

    [Fact]
    public async Task Metrics_AfterRequests_ExposesRequestsLatencyBatchQueueAndReloads()
    {
        await _server.PostAsync("/v2/models/linear/infer", OnnxTestModels.InferBody([1, 2, 3, 4], 1));
        await _server.PostAsync("/v2/models/linear/infer", "{");
        var text = await _server.Client.GetStringAsync("/metrics");
        Assert.Contains("lightning_inference_requests_total{model=\"linear\",status=\"200\"}", text);
        Assert.Contains("lightning_inference_requests_total{model=\"linear\",status=\"400\"}", text);
        Assert.Contains("lightning_inference_request_duration_seconds_bucket{model=\"linear\"", text);
        Assert.Contains("lightning_inference_batch_size_bucket{model=\"linear\"", text);
        Assert.Contains("lightning_inference_runs_total{model=\"linear\"}", text);
        Assert.Contains("lightning_inference_queue_depth{model=\"linear\"}", text);
        Assert.Contains("lightning_inference_model_reloads_total", text);
    }

    [Fact]
    public async Task Infer_RandomlyCorruptedBodies_NeverReturn500()
    {
        var random = new Random(1234);
        var valid = OnnxTestModels.InferBody([1, 2, 3, 4, 5, 6, 7, 8], 2, id: "fuzz");
        const string alphabet = "{}[]\",:0123456789-.eE truefalsnul\\x";
        var statuses = new HashSet<HttpStatusCode>();
        for (int i = 0; i < 300; i++)
        {
            var chars = valid.ToCharArray().ToList();
            for (int edits = random.Next(1, 4); edits > 0 && chars.Count > 0; edits--)
            {
                int at = random.Next(chars.Count);
                switch (random.Next(4))
                {
                    case 0: chars.RemoveAt(at); break;
                    case 1: chars.Insert(at, alphabet[random.Next(alphabet.Length)]); break;
                    case 2: chars[at] = alphabet[random.Next(alphabet.Length)]; break;
                    default: chars.RemoveRange(at, chars.Count - at); break;
                }
            }
            using var content = new StringContent(new string([.. chars]), System.Text.Encoding.UTF8, "application/json");
            var response = await _server.Client.PostAsync("/v2/models/linear/infer", content);
            statuses.Add(response.StatusCode);
            Assert.True(response.StatusCode is HttpStatusCode.OK or HttpStatusCode.BadRequest,
                $"corruption {i}: {new string([.. chars])} → {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
            if (response.StatusCode == HttpStatusCode.BadRequest)
                Assert.NotNull(JsonNode.Parse(await response.Content.ReadAsStringAsync())!["error"]);
        }
        Assert.Contains(HttpStatusCode.BadRequest, statuses);
        var (live, _) = await _server.GetAsync("/v2/health/live");
        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
    }
}
