using System.Net;
using System.Text.Json.Nodes;
using Lightning.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Lightning.Serving.Tests.Inference;

public sealed class InferenceBatchingTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static float[] Row(int i) => [i, -i * 0.5f, 1 + i, 2 - i];

    /// <summary>Posts a request and waits until it is queued, so the queue holds the requests in the order of the calls.</summary>
    private static async Task<Task<(HttpResponseMessage Response, JsonNode? Body)>> PostQueuedAsync(InferenceTestServer server, ServedModel model, string route, string body)
    {
        var queued = model.QueueLength + 1;
        var task = server.PostAsync(route, body);
        await Wait.UntilAsync(() => model.QueueLength == queued, $"request {queued} to queue");
        return task;
    }

    [Fact]
    public async Task Infer_ConcurrentRequestsQueued_MergedIntoOneRunWithSingleRunResults()
    {
        var path = OnnxTestModels.Linear(_dir.Combine("linear.onnx"));
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModel("linear", path, o => o.WatchForChanges = false));
        var model = server.Model("linear");
        var gate = new TaskCompletionSource();
        model.RunGate = gate.Task;
        const int n = 8;
        // Requests of 1 and 2 rows: the merged run splits them back by their own dim 0.
        var tasks = Enumerable.Range(0, n).Select(i =>
        {
            var rows = i % 2 + 1;
            var data = Enumerable.Range(0, rows).SelectMany(r => Row(i * 10 + r)).ToArray();
            return (data, rows, task: server.PostAsync("/v2/models/linear/infer", OnnxTestModels.InferBody(data, rows)));
        }).ToList();
        await Wait.UntilAsync(() => model.QueueLength == n, $"{n} queued requests");
        model.RunGate = null;
        gate.SetResult();

        foreach (var (data, rows, task) in tasks)
        {
            var (response, body) = await task;
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal($"[{rows},3]", body!["outputs"]![0]!["shape"]!.ToJsonString());
            Approx.AssertClose(OnnxTestModels.Reference(path, data, [rows, 4]), OnnxTestModels.Floats(body["outputs"]![0]!["data"]));
        }
        Assert.Equal(1, model.RunCount);
        var metrics = await server.Client.GetStringAsync("/metrics");
        Assert.Contains("lightning_inference_batch_size_sum{model=\"linear\"} 12", metrics);
    }

    [Fact]
    public async Task Infer_ConcurrentRequestsWithQueueDelay_FewerRunsThanRequests()
    {
        var path = OnnxTestModels.Linear(_dir.Combine("linear.onnx"));
        // The longest delay allowed (10 s): the batch ends when the last arrival is in, not by the clock.
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModel("linear", path, o =>
        {
            o.WatchForChanges = false;
            o.MaxQueueDelayMicroseconds = 10_000_000;
            o.MaxBatchSize = 64;
        }));
        const int n = 16;
        var model = server.Model("linear");
        var formed = new System.Collections.Concurrent.ConcurrentQueue<int>();
        model.BatchFormed = formed.Enqueue;
        var gate = new TaskCompletionSource();
        model.RunGate = gate.Task;
        var tasks = new List<Task<(HttpResponseMessage Response, JsonNode? Body)>>();
        // A request still arriving (a slow client) keeps the forming batch open while the others come one by one.
        using (model.Arrive())
        {
            tasks.Add(server.PostAsync("/v2/models/linear/infer", OnnxTestModels.InferBody(Row(0), 1)));
            await Wait.UntilAsync(() => model.QueueLength == 1, "the first request to queue");
            model.RunGate = null;
            gate.SetResult();
            await Wait.UntilAsync(() => model.QueueLength == 0, "the batcher to take the first request");
            for (int i = 1; i < n; i++)
            {
                tasks.Add(server.PostAsync("/v2/models/linear/infer", OnnxTestModels.InferBody(Row(i), 1)));
                var joined = i + 1;
                await Wait.UntilAsync(() => model.Forming == joined, $"request {i} to join the forming batch");
            }
        }
        for (int i = 0; i < n; i++)
        {
            var (response, body) = await tasks[i];
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Approx.AssertClose(OnnxTestModels.Reference(path, Row(i), [1, 4]), OnnxTestModels.Floats(body!["outputs"]![0]!["data"]));
        }
        Assert.Equal([n], formed);
        Assert.Equal(1, model.RunCount);
    }

    [Fact]
    public async Task Infer_MoreQueuedRowsThanMaxBatchSize_SplitIntoRunsOfAtMostMaxBatchSize()
    {
        var path = OnnxTestModels.Linear(_dir.Combine("linear.onnx"));
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModel("linear", path, o =>
        {
            o.WatchForChanges = false;
            o.MaxBatchSize = 4;
        }));
        var model = server.Model("linear");
        var formed = new System.Collections.Concurrent.ConcurrentQueue<int>();
        model.BatchFormed = formed.Enqueue;
        var gate = new TaskCompletionSource();
        model.RunGate = gate.Task;
        // Rows per request: 1, 2, 1, 2, …: 15 rows in 10 requests; a request never splits across runs.
        int[] rows = [1, 2, 1, 2, 1, 2, 1, 2, 1, 2];
        var tasks = new List<(float[] data, int r, Task<(HttpResponseMessage Response, JsonNode? Body)> task)>();
        for (int i = 0; i < rows.Length; i++)
        {
            var data = Enumerable.Range(0, rows[i]).SelectMany(k => Row(i * 10 + k)).ToArray();
            tasks.Add((data, rows[i], await PostQueuedAsync(server, model, "/v2/models/linear/infer", OnnxTestModels.InferBody(data, rows[i]))));
        }
        model.RunGate = null;
        gate.SetResult();

        foreach (var (data, r, task) in tasks)
        {
            var (response, body) = await task;
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Approx.AssertClose(OnnxTestModels.Reference(path, data, [r, 4]), OnnxTestModels.Floats(body!["outputs"]![0]!["data"]));
        }
        // Greedy in queue order: 1+2 (the next 1 would still fit: 1+2+1 = 4), then 2+1, 2+1, … up to 4 rows each.
        var expected = new List<int>();
        int batch = 0, batchRows = 0;
        foreach (var r in rows)
        {
            if (batchRows + r > 4) { expected.Add(batch); (batch, batchRows) = (0, 0); }
            batch++;
            batchRows += r;
        }
        expected.Add(batch);
        Assert.Equal(expected, formed);
        Assert.Equal(expected.Count, model.RunCount);
    }

    [Fact]
    public async Task Infer_RequestsOfDifferentShapesInOneQueue_RunInSeparateBatchesWithTheirOwnAnswers()
    {
        var path = OnnxGraphs.IdentityAnyWidth(_dir.Combine("identity.onnx"));
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModel("identity", path, o => o.WatchForChanges = false));
        var model = server.Model("identity");
        var formed = new System.Collections.Concurrent.ConcurrentQueue<int>();
        model.BatchFormed = formed.Enqueue;
        var gate = new TaskCompletionSource();
        model.RunGate = gate.Task;
        // Three of width 2, then three of width 3: rows of different widths cannot share one tensor.
        int[] widths = [2, 2, 2, 3, 3, 3];
        var tasks = new List<(float[] data, int w, Task<(HttpResponseMessage Response, JsonNode? Body)> task)>();
        for (int i = 0; i < widths.Length; i++)
        {
            var data = Enumerable.Range(0, widths[i]).Select(k => (float)(i * 10 + k)).ToArray();
            var body = System.Text.Json.JsonSerializer.Serialize(new { inputs = new[] { new { name = "x", shape = new long[] { 1, widths[i] }, datatype = "FP32", data } } });
            tasks.Add((data, widths[i], await PostQueuedAsync(server, model, "/v2/models/identity/infer", body)));
        }
        model.RunGate = null;
        gate.SetResult();

        foreach (var (data, w, task) in tasks)
        {
            var (response, body) = await task;
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal($"[1,{w}]", body!["outputs"]![0]!["shape"]!.ToJsonString());
            Assert.Equal(data, OnnxTestModels.Floats(body["outputs"]![0]!["data"]));
        }
        Assert.Equal([3, 3], formed);
    }

    [Fact]
    public async Task Infer_LoneRequestWithLongQueueDelay_RunsWithoutWaitingForTheDelay()
    {
        var path = OnnxTestModels.Linear(_dir.Combine("linear.onnx"));
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModel("linear", path, o =>
        {
            o.WatchForChanges = false;
            o.MaxQueueDelayMicroseconds = 10_000_000;
        }));

        // Nothing else arrives, so the batcher has no reason to wait the 10 s.
        var (response, body) = await server.PostAsync("/v2/models/linear/infer", OnnxTestModels.InferBody(Row(1), 1)).WaitAsync(TimeSpan.FromSeconds(5));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Approx.AssertClose(OnnxTestModels.Reference(path, Row(1), [1, 4]), OnnxTestModels.Floats(body!["outputs"]![0]!["data"]));
    }

    [Fact]
    public async Task Infer_AnotherRequestArriving_BatcherWaitsAndMergesIt()
    {
        var path = OnnxTestModels.Linear(_dir.Combine("linear.onnx"));
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModel("linear", path, o =>
        {
            o.WatchForChanges = false;
            o.MaxQueueDelayMicroseconds = 10_000_000;
        }));
        var model = server.Model("linear");
        var gate = new TaskCompletionSource();
        model.RunGate = gate.Task;
        var first = server.PostAsync("/v2/models/linear/infer", OnnxTestModels.InferBody(Row(1), 1));
        await Wait.UntilAsync(() => model.QueueLength == 1, "the first request to queue");

        // A second request is on its way (as if its body were being read) when the batcher takes the first.
        var arriving = model.Arrive();
        model.RunGate = null;
        gate.SetResult();
        await Wait.UntilAsync(() => model.QueueLength == 0, "the batcher to take the first request");
        var second = server.PostAsync("/v2/models/linear/infer", OnnxTestModels.InferBody(Row(2), 1));
        await Wait.UntilAsync(() => model.Forming == 2, "the batcher to add the second request");
        // The last arrival is in: the batch runs now, not after the 10 s delay.
        arriving.Dispose();

        var results = await Task.WhenAll(first, second).WaitAsync(TimeSpan.FromSeconds(5));
        Assert.All(results, r => Assert.Equal(HttpStatusCode.OK, r.Response.StatusCode));
        Approx.AssertClose(OnnxTestModels.Reference(path, Row(2), [1, 4]), OnnxTestModels.Floats(results[1].Body!["outputs"]![0]!["data"]));
        Assert.Equal(1, model.RunCount);
    }

    [Fact]
    public async Task Infer_QueueFull_Returns503WithRetryAfter()
    {
        var path = OnnxTestModels.Linear(_dir.Combine("linear.onnx"));
        await using var server = await InferenceTestServer.StartAsync(
            b => b.AddModel("linear", path, o => { o.WatchForChanges = false; o.MaxQueueSize = 1; }),
            o => o.RetryAfterSeconds = 2);
        var model = server.Model("linear");
        var gate = new TaskCompletionSource();
        model.RunGate = gate.Task;
        var first = server.PostAsync("/v2/models/linear/infer", OnnxTestModels.InferBody(Row(1), 1));
        await Wait.UntilAsync(() => model.QueueLength == 1, "the first request to queue");

        var (response, body) = await server.PostAsync("/v2/models/linear/infer", OnnxTestModels.InferBody(Row(2), 1));

        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal("2", response.Headers.GetValues("Retry-After").Single());
        Assert.Contains("exceeds maximum queue size", body!["error"]!.GetValue<string>());
        model.RunGate = null;
        gate.SetResult();
        Assert.Equal(HttpStatusCode.OK, (await first).Response.StatusCode);
        var metrics = await server.Client.GetStringAsync("/metrics");
        Assert.Contains("lightning_inference_requests_total{model=\"linear\",status=\"503\"} 1", metrics);
    }

    [Fact]
    public async Task Shutdown_RequestsInFlight_FinishWhileNewOnesAreRefused()
    {
        var path = OnnxTestModels.Linear(_dir.Combine("linear.onnx"));
        var server = await InferenceTestServer.StartAsync(b => b.AddModel("linear", path, o => o.WatchForChanges = false), o => o.RetryAfterSeconds = 4);
        var model = server.Model("linear");
        var gate = new TaskCompletionSource();
        model.RunGate = gate.Task;
        var inFlight = Enumerable.Range(0, 6).Select(i => server.PostAsync("/v2/models/linear/infer", OnnxTestModels.InferBody(Row(i), 1))).ToList();
        await Wait.UntilAsync(() => model.QueueLength == 6, "6 queued requests");

        server.App.Services.GetRequiredService<IHostApplicationLifetime>().StopApplication();
        var (refused, body) = await server.PostAsync("/v2/models/linear/infer", OnnxTestModels.InferBody(Row(9), 1));
        var (ready, _) = await server.GetAsync("/v2/health/ready");
        var stopping = server.App.StopAsync();
        model.RunGate = null;
        gate.SetResult();

        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Contains("shutting down", body!["error"]!.GetValue<string>());
        Assert.Equal("4", refused.Headers.GetValues("Retry-After").Single());
        Assert.Equal(HttpStatusCode.BadRequest, ready.StatusCode);
        for (int i = 0; i < inFlight.Count; i++)
        {
            var (response, result) = await inFlight[i];
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Approx.AssertClose(OnnxTestModels.Reference(path, Row(i), [1, 4]), OnnxTestModels.Floats(result!["outputs"]![0]!["data"]));
        }
        await stopping;
        await server.DisposeAsync();
    }
}
