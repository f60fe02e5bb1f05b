using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Lightning.Serving.Tests.Inference;
using Lightning.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Lightning.Serving.Tests.Endpoints;

/// <summary>The defects of issue #19, each of which now gets its 4xx (or a 503 for a fault of the server), and the batcher's resilience.</summary>
public sealed class ServingHardeningTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData("""{"id":"\ud800","inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}""", "\"id\"")]
    [InlineData("""{"inputs":[{"name":"in\udc00put","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}""", "\"name\" of inputs[0]")]
    public async Task Infer_LoneSurrogateEscape_Returns400WithoutLoggingAnError(string body, string what)
    {
        var path = OnnxTestModels.Linear(_dir.Combine("linear.onnx"));
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModel("linear", path, o => o.WatchForChanges = false));

        var (response, json) = await server.PostAsync("/v2/models/linear/infer", body);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains($"{what} = ", json!["error"]!.GetValue<string>());
        Assert.Contains("lone surrogate", json["error"]!.GetValue<string>());
        Assert.DoesNotContain(server.Logs.Entries, e => e.Level >= LogLevel.Error);
    }

    [Theory]
    [InlineData("/predict")]
    [InlineData("/v2/models/linear/infer")]
    public async Task Post_HugeDeclaredContentLength_Returns413WithoutAllocatingIt(string path)
    {
        File.WriteAllBytes(_dir.Combine("a.zip"), TestModels.A);
        var linear = OnnxTestModels.Linear(_dir.Combine("linear.onnx"));
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseKestrel().UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var logs = new LogCollector();
        builder.Logging.AddProvider(logs);
        builder.Services.AddPredictionEnginePool<SizeInput, ScoreOutput>().FromFile(_dir.Combine("a.zip"), watchForChanges: false);
        builder.Services.AddOnnxInference().AddModel("linear", linear, o => o.WatchForChanges = false);
        await using var app = builder.Build();
        app.MapPredict<SizeInput, ScoreOutput>("/predict");
        app.MapOpenInference();
        await app.StartAsync();
        var address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        long allocatedBefore = GC.GetTotalAllocatedBytes(precise: true);

        // A raw socket: HttpClient would refuse to declare more than it sends.
        using var socket = new TcpClient();
        await socket.ConnectAsync(IPAddress.Loopback, address.Port);
        var stream = socket.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2147483600\r\n\r\n{{\"Size\":"));
        var reply = new byte[4096];
        int read = await stream.ReadAsync(reply).AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        var status = Encoding.ASCII.GetString(reply, 0, read).Split("\r\n")[0];

        Assert.Equal("HTTP/1.1 413 Payload Too Large", status);
        Assert.True(GC.GetTotalAllocatedBytes(precise: true) - allocatedBefore < 64 << 20, "the declared length was allocated");
        Assert.DoesNotContain(logs.Entries, e => e.Level >= LogLevel.Error);
    }

    [Fact]
    public async Task BatchLoop_FaultWhileBatching_FailsThatBatchWith503_TurnsNotReady_ThenServesAgain()
    {
        var path = OnnxTestModels.Linear(_dir.Combine("linear.onnx"));
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModel("linear", path, o => o.WatchForChanges = false));
        var model = server.Model("linear");
        var gate = new TaskCompletionSource();
        var faulted = new TaskCompletionSource();
        var release = new TaskCompletionSource();
        model.RunGate = gate.Task;
        model.BatchFormed = _ =>
        {
            model.BatchFormed = null;
            faulted.SetResult();
            // Hold the fault until the test has seen readiness from inside the loop's fault, then let it escape.
            release.Task.Wait(TimeSpan.FromSeconds(10));
            throw new InvalidOperationException("injected batch fault");
        };
        var queued = server.PostAsync("/v2/models/linear/infer", OnnxTestModels.InferBody([1, 2, 3, 4], 1));
        await Wait.UntilAsync(() => model.QueueLength == 1, "the request to queue");
        model.RunGate = null;
        gate.SetResult();
        await faulted.Task.WaitAsync(TimeSpan.FromSeconds(10));
        release.SetResult();

        var (response, body) = await queued;
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Contains("the batcher restarted, retry the request", body!["error"]!.GetValue<string>());
        Assert.Equal(1, model.LoopFaults);
        await Wait.UntilAsync(() => model.IsReady, "the loop to restart");
        var (ready, _) = await server.GetAsync("/v2/health/ready");
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        // The restarted loop runs queued requests again.
        gate = new TaskCompletionSource();
        model.RunGate = gate.Task;
        var again = server.PostAsync("/v2/models/linear/infer", OnnxTestModels.InferBody([1, 2, 3, 4], 1));
        await Wait.UntilAsync(() => model.QueueLength == 1, "the second request to queue");
        model.RunGate = null;
        gate.SetResult();
        Assert.Equal(HttpStatusCode.OK, (await again).Response.StatusCode);
    }

    [Fact]
    public async Task BatchLoop_WhileRestarting_ReadinessIsFalse_AndRequestsGet503WithRetryAfter()
    {
        var path = OnnxTestModels.Linear(_dir.Combine("linear.onnx"));
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModel("linear", path, o => o.WatchForChanges = false),
            o => o.RetryAfterSeconds = 3);
        var model = server.Model("linear");
        // A long pause before the restart, so the test sees the model while it cannot serve.
        model.RestartDelay = TimeSpan.FromSeconds(30);
        var gate = new TaskCompletionSource();
        model.RunGate = gate.Task;
        model.BatchFormed = _ => throw new InvalidOperationException("injected batch fault");
        var queued = server.PostAsync("/v2/models/linear/infer", OnnxTestModels.InferBody([1, 2, 3, 4], 1));
        await Wait.UntilAsync(() => model.QueueLength == 1, "the request to queue");
        model.RunGate = null;
        gate.SetResult();
        await Wait.UntilAsync(() => model.LoopFaults >= 1, "the fault");

        var (ready, readyBody) = await server.GetAsync("/v2/models/linear/ready");
        var (serverReady, _) = await server.GetAsync("/v2/health/ready");
        var (infer, inferBody) = await server.PostAsync("/v2/models/linear/infer", OnnxTestModels.InferBody([1, 2, 3, 4], 1));

        Assert.Equal(HttpStatusCode.BadRequest, ready.StatusCode);
        Assert.False(readyBody!["ready"]!.GetValue<bool>());
        Assert.Equal(HttpStatusCode.BadRequest, serverReady.StatusCode);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, infer.StatusCode);
        Assert.Contains("restarting its batch loop", inferBody!["error"]!.GetValue<string>());
        Assert.Equal("3", infer.Headers.GetValues("Retry-After").Single());
        Assert.Equal(HttpStatusCode.ServiceUnavailable, (await queued).Response.StatusCode);
    }

    [Fact]
    public async Task Infer_ClientDisconnectsWhileQueued_RequestIsDroppedUnrun()
    {
        var path = OnnxTestModels.Linear(_dir.Combine("linear.onnx"));
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModel("linear", path, o => o.WatchForChanges = false));
        var model = server.Model("linear");
        var gate = new TaskCompletionSource();
        model.RunGate = gate.Task;
        using var abandon = new CancellationTokenSource();
        using var content = new StringContent(OnnxTestModels.InferBody([1, 2, 3, 4], 1), Encoding.UTF8, "application/json");
        var abandoned = server.Client.PostAsync("/v2/models/linear/infer", content, abandon.Token);
        var kept = server.PostAsync("/v2/models/linear/infer", OnnxTestModels.InferBody([5, 6, 7, 8], 1));
        await Wait.UntilAsync(() => model.QueueLength == 2, "two queued requests");

        abandon.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => abandoned);
        model.RunGate = null;
        gate.SetResult();

        Assert.Equal(HttpStatusCode.OK, (await kept).Response.StatusCode);
        await Wait.UntilAsync(() => model.Dropped == 1, "the abandoned request to be dropped");
        Assert.Equal(1, model.RunCount);
    }

    [Fact]
    public async Task Infer_TimeoutParameterExpiresWhileQueued_Returns503WithRetryAfterAndIsDroppedUnrun()
    {
        var path = OnnxTestModels.Linear(_dir.Combine("linear.onnx"));
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModel("linear", path, o => o.WatchForChanges = false),
            o => o.RetryAfterSeconds = 3);
        var model = server.Model("linear");
        var gate = new TaskCompletionSource();
        model.RunGate = gate.Task;
        var body = """{"parameters":{"timeout":50000},"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}""";

        var (response, json) = await server.PostAsync("/v2/models/linear/infer", body);
        model.RunGate = null;
        gate.SetResult();

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Contains("request timeout expired", json!["error"]!.GetValue<string>());
        Assert.Equal("3", response.Headers.GetValues("Retry-After").Single());
        await Wait.UntilAsync(() => model.Dropped == 1, "the expired request to be dropped");
        Assert.Equal(0, model.RunCount);
    }

    [Fact]
    public async Task Infer_TimeoutParameterZeroOrTiny_ZeroIsNoTimeoutAndATinyOneIsNeverA500()
    {
        var path = OnnxTestModels.Linear(_dir.Combine("linear.onnx"));
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModel("linear", path, o => o.WatchForChanges = false));
        var model = server.Model("linear");
        var gate = new TaskCompletionSource();
        model.RunGate = gate.Task;
        // Queued behind the gate, so only the timeout can end it: 0 waits for the run, 1 µs expires before it.
        var none = server.PostAsync("/v2/models/linear/infer",
            """{"parameters":{"timeout":0},"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}""");
        var (tiny, tinyBody) = await server.PostAsync("/v2/models/linear/infer",
            """{"parameters":{"timeout":1},"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[1,2,3,4]}]}""");
        model.RunGate = null;
        gate.SetResult();

        Assert.Equal(HttpStatusCode.OK, (await none).Response.StatusCode);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, tiny.StatusCode);
        Assert.Contains("request timeout expired", tinyBody!["error"]!.GetValue<string>());
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 0)]
    public async Task MaxConcurrentRuns_SecondRequestWhileOneRuns_RunsAtOnceOnlyWhenAllowed(int maxConcurrentRuns, int expectedQueued)
    {
        var path = OnnxTestModels.Linear(_dir.Combine("linear.onnx"));
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModel("linear", path, o =>
        {
            o.WatchForChanges = false;
            o.MaxConcurrentRuns = maxConcurrentRuns;
        }));
        var model = server.Model("linear");
        var running = new TaskCompletionSource();
        var release = new TaskCompletionSource();
        model.InlineRunStarting = () =>
        {
            model.InlineRunStarting = null;
            running.SetResult();
            release.Task.Wait(TimeSpan.FromSeconds(10));
        };
        var first = Task.Run(() => server.PostAsync("/v2/models/linear/infer", OnnxTestModels.InferBody([1, 2, 3, 4], 1)));
        await running.Task.WaitAsync(TimeSpan.FromSeconds(10));

        // Answered while the first run still holds its thread: at once (inline) or through the batcher.
        var (second, _) = await server.PostAsync("/v2/models/linear/infer", OnnxTestModels.InferBody([5, 6, 7, 8], 1)).WaitAsync(TimeSpan.FromSeconds(10));
        release.SetResult();

        Assert.Equal(HttpStatusCode.OK, second.StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await first).Response.StatusCode);
        Assert.Equal(expectedQueued, model.Queued);
    }

    [Fact]
    public async Task DynamicBatching_DimZeroNamedDifferently_RequestsAreNotMerged()
    {
        var path = OnnxGraphs.CumulativeRows(_dir.Combine("cumsum.onnx"));
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModel("cumsum", path, o => o.WatchForChanges = false));
        var model = server.Model("cumsum");
        var gate = new TaskCompletionSource();
        model.RunGate = gate.Task;
        var first = server.PostAsync("/v2/models/cumsum/infer", """{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[1,2,3,4]}]}""");
        var second = server.PostAsync("/v2/models/cumsum/infer", """{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[10,20]}]}""");
        await Wait.UntilAsync(() => model.QueueLength == 2, "two queued requests");
        model.RunGate = null;
        gate.SetResult();

        // Merged, the second request's rows would add the first's.
        Assert.Equal("[1,2,4,6]", (await first).Body!["outputs"]![0]!["data"]!.ToJsonString());
        Assert.Equal("[10,20]", (await second).Body!["outputs"]![0]!["data"]!.ToJsonString());
        Assert.Equal(2, model.RunCount);
        Assert.False(model.Current!.Batchable);
    }

    [Fact]
    public async Task DynamicBatching_OptedIn_MergesEvenWithoutASharedName()
    {
        var path = OnnxGraphs.CumulativeRows(_dir.Combine("cumsum.onnx"));
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModel("cumsum", path, o =>
        {
            o.WatchForChanges = false;
            o.DynamicBatching = true;
        }));

        Assert.True(server.Model("cumsum").Current!.Batchable);
    }

    [Fact]
    public async Task DynamicBatching_ExporterBatchAxis_IsMerged()
    {
        var path = OnnxTestModels.Linear(_dir.Combine("linear.onnx"));
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModel("linear", path, o => o.WatchForChanges = false));

        Assert.True(server.Model("linear").Current!.Batchable);
    }

    [Fact]
    public async Task Infer_DataBeforeShapeWithFarMoreElements_Returns400WithoutReadingThemAll()
    {
        var path = OnnxTestModels.Linear(_dir.Combine("linear.onnx"));
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModel("linear", path, o => o.WatchForChanges = false));
        var body = "{\"inputs\":[{\"data\":[" + string.Join(',', Enumerable.Repeat("1", 200_000)) + "],\"name\":\"input\",\"datatype\":\"FP32\",\"shape\":[1,4]}]}";

        var (response, json) = await server.PostAsync("/v2/models/linear/infer", body);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("input 'input' has shape [1, 4], which needs 4 elements, but \"data\" holds more than 4", json!["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task Infer_InputsWhoseRowsDoNotBroadcast_Returns400NotA500()
    {
        var path = OnnxGraphs.Sum(_dir.Combine("sum.onnx"));
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModel("sum", path, o =>
        {
            o.WatchForChanges = false;
            o.DynamicBatching = false;
        }));

        var (response, json) = await server.PostAsync("/v2/models/sum/infer",
            """{"inputs":[{"name":"x","shape":[2,2],"datatype":"FP32","data":[1,2,3,4]},{"name":"y","shape":[3,2],"datatype":"FP32","data":[1,2,3,4,5,6]}]}""");

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("input 'y' of model 'sum' has dim 0 ('batch') = 3, but input 'x' has dim 0 ('batch') = 2", json!["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task Infer_EmbeddingIndexOutOfRange_Returns400FromOnnxRuntimesInvalidArgument()
    {
        var path = OnnxTestModels.Embedding(_dir.Combine("embedding.onnx"));
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModel("embedding", path, o => o.WatchForChanges = false));

        var (response, json) = await server.PostAsync("/v2/models/embedding/infer",
            """{"inputs":[{"name":"input","shape":[1,5],"datatype":"INT64","data":[1,2,3,4,99]}]}""");

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Contains("cannot run the request's data", json!["error"]!.GetValue<string>());
    }
}
