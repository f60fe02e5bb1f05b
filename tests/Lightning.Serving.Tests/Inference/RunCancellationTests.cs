using System.Diagnostics;
using System.Net;
using Lightning.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Lightning.Serving.Tests.Inference;

/// <summary>
/// A request's timeout (or its caller leaving) stops a run already in progress, not only a queued one; a stopped run
/// leaves the model able to run the next request; a queue delay under a millisecond still waits.
/// </summary>
public sealed class RunCancellationTests : IDisposable
{
    // 200 MatMuls of 512 × 512 on 1024 rows: some 100 GFLOP, seconds on this machine, so the run is still going when a
    // timeout of 50 or 300 ms expires; ONNX Runtime checks the terminate flag between nodes, some 5 ms apart.
    private const int Width = 512;
    private const int Depth = 200;
    private const int Rows = 1024;

    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public void Run_TokenFiresDuringTheRun_StopsIt_AndTheNextRunOfTheModelAnswers()
    {
        var path = OnnxGraphs.MatMulChain(_dir.Combine("chain.onnx"), Width, Depth);
        using var model = LoadedModel.Load("chain", File.ReadAllBytes(path), new OnnxModelOptions(), NullLogger.Instance, 1);
        var input = new InferenceTensor("x", TensorElementType.Float, [Rows, 8], Enumerable.Repeat(1f, Rows * 8).ToArray());
        using var cts = new CancellationTokenSource();
        cts.CancelAfter(TimeSpan.FromMilliseconds(50));

        var stopped = Assert.Throws<OperationCanceledException>(() => model.Run([input], cts.Token));
        Assert.Equal(cts.Token, stopped.CancellationToken);

        // The pooled run options go back with their terminate flag cleared: a run with a live token completes.
        using var live = new CancellationTokenSource();
        var small = new InferenceTensor("x", TensorElementType.Float, [2, 8], Enumerable.Repeat(1f, 16).ToArray());
        var output = Assert.Single(model.Run([small], live.Token));
        // Every weight is 1/8 then 1/width, so each element stays the sum of one row of ones divided by 8: 1.
        Assert.Equal([2L, Width], output.Shape);
        Assert.All((float[])output.Data, v => Assert.Equal(1f, v, 1e-4f));
    }

    [Fact]
    public async Task Infer_TimeoutExpiresWhileTheModelRuns_Answers503AtOnce_AndTheRunIsStopped()
    {
        var path = OnnxGraphs.MatMulChain(_dir.Combine("chain.onnx"), Width, Depth);
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModel("chain", path, o =>
        {
            o.WatchForChanges = false;
            o.MaxBatchSize = Rows;
        }));
        var model = server.Model("chain");
        string data = string.Join(",", Enumerable.Repeat("1", Rows * 8));

        // The model is idle, so the request runs inline, on the request's own thread: only stopping the run can answer it early.
        var (response, json) = await server.PostAsync("/v2/models/chain/infer",
            $$"""{"parameters":{"timeout":300000},"inputs":[{"name":"x","shape":[{{Rows}},8],"datatype":"FP32","data":[{{data}}]}]}""");

        Assert.True(response.StatusCode == HttpStatusCode.ServiceUnavailable, $"{response.StatusCode}: {json}");
        Assert.Contains("request timeout expired", json!["error"]!.GetValue<string>());
        Assert.Equal(1, model.RunCount);
        Assert.Equal(0, model.Queued);
        Assert.Equal(1, model.StoppedRuns);

        var (next, answer) = await server.PostAsync("/v2/models/chain/infer",
            """{"inputs":[{"name":"x","shape":[1,8],"datatype":"FP32","data":[1,1,1,1,1,1,1,1]}]}""");
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
        Assert.Equal(Width, answer!["outputs"]![0]!["data"]!.AsArray().Count);
    }

    [Fact]
    public async Task Batcher_QueueDelayUnderOneMillisecond_WaitsForArrivingRequests()
    {
        const long delayMicroseconds = 900;
        var path = OnnxTestModels.Linear(_dir.Combine("linear.onnx"));
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModel("linear", path, o =>
        {
            o.WatchForChanges = false;
            o.MaxQueueDelayMicroseconds = delayMicroseconds;
        }));
        var model = server.Model("linear");
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        int waits = 0;
        long formedAt = 0, releasedAt;
        model.WaitingForPartners = () => Interlocked.Increment(ref waits);
        model.BatchFormed = _ => Interlocked.Exchange(ref formedAt, Stopwatch.GetTimestamp());
        model.RunGate = gate.Task;
        var queued = model.InferAsync([new InferenceTensor("input", TensorElementType.Float, [1, 4], new float[] { 1, 2, 3, 4 })], null);

        // Another request is arriving (its body being read) and never comes: the batch waits for it, up to the delay.
        using (model.Arrive())
        {
            model.RunGate = null;
            // The batch starts forming after this, so its deadline is at least the delay past it.
            releasedAt = Stopwatch.GetTimestamp();
            gate.SetResult();
            await queued;
        }

        Assert.True(Volatile.Read(ref waits) >= 1, "the batcher formed the batch without waiting for the arriving request");
        double waitedMicroseconds = (Interlocked.Read(ref formedAt) - releasedAt) * 1e6 / Stopwatch.Frequency;
        Assert.True(waitedMicroseconds >= delayMicroseconds,
            $"the batch stopped waiting for partners after {waitedMicroseconds:F0} µs; MaxQueueDelayMicroseconds = {delayMicroseconds} while a request was arriving");
    }

    [Fact]
    public async Task Infer_ModelFailsWhileRunningOnTheRequestsData_Answers400NamingTheModel()
    {
        var path = OnnxGraphs.ReshapeToThrees(_dir.Combine("reshape.onnx"));
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModel("threes", path, o => o.WatchForChanges = false));

        var (even, fits) = await server.PostAsync("/v2/models/threes/infer",
            """{"inputs":[{"name":"x","shape":[3,2],"datatype":"FP32","data":[1,2,3,4,5,6]}]}""");
        var (odd, json) = await server.PostAsync("/v2/models/threes/infer",
            """{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]}]}""");

        Assert.True(even.StatusCode == HttpStatusCode.OK, $"{even.StatusCode}: {fits}");
        Assert.True(odd.StatusCode == HttpStatusCode.BadRequest, $"{odd.StatusCode}: {json}");
        var error = json!["error"]!.GetValue<string>();
        Assert.Contains("model 'threes' cannot run the request's data", error);
        Assert.Contains("Reshape", error);
    }
}
