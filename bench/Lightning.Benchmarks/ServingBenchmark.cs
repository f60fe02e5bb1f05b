using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Lightning.Onnx;
using Google.Protobuf;
using Grpc.Net.Client;
using Lightning.Serving;
using Lightning.Serving.OpenInference;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using System.Runtime.InteropServices;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using static TorchSharp.torch;

namespace Lightning.Benchmarks;

/// <summary>
/// Requests/s and latency on 127.0.0.1 for the same ONNX model served four ways: (a) MapPredict with the
/// PredictionEnginePool (ML.NET's OnnxTransformer), (b) Open Inference Protocol v2 over REST with dynamic batching,
/// (e) the same v2 model and batcher over gRPC with raw contents, (c) ONNX Runtime called in-process, and (d) the bare
/// HTTP round trip with the same body, the floor under (a) and (b). Bounded request counts, five alternating rounds,
/// medians; the load generator shares the machine's cores with the server.
/// </summary>
internal static class ServingBenchmark
{
    public const string Name = "serving";

    private const int Features = 784;
    // Two levels, five rounds: the summary line needs c=1 and c=32, and the whole run stays a few minutes on 2 cores.
    private static readonly int[] Concurrency = [1, 32];

    public sealed class Input
    {
        [ColumnName("input"), VectorType(Features)] public float[] Values { get; set; } = [];
    }

    public sealed class Output
    {
        [ColumnName("output")] public float[] Scores { get; set; } = [];
    }

    public static void Run(string[] args)
    {
        var total = Stopwatch.StartNew();
        var folder = Directory.CreateTempSubdirectory("lightning-serving-bench").FullName;
        try
        {
            var onnx = Path.Combine(folder, "mlp.onnx");
            using (no_grad())
                nn.Sequential(nn.Linear(Features, 256), nn.ReLU(), nn.Linear(256, 10)).ToOnnx(onnx, rand(1, Features));
            var zip = Path.Combine(folder, "model.zip");
            SaveMlNetModel(onnx, zip);
            var sample = Enumerable.Range(0, Features).Select(i => (float)Math.Sin(i)).ToArray();

            // Bodies are serialized once, so the load generator (sharing the cores with the server) spends no time on JSON.
            var predictBody = JsonSerializer.SerializeToUtf8Bytes(new Input { Values = sample });
            var v2Body = Encoding.UTF8.GetBytes(
                $"{{\"inputs\":[{{\"name\":\"input\",\"shape\":[1,{Features}],\"datatype\":\"FP32\",\"data\":[{string.Join(',', sample.Select(v => v.ToString("R", CultureInfo.InvariantCulture)))}]}}]}}");
            // Timed before any server starts: afterwards the stopped hosts' threads and the GC still run beside it.
            var parseLine = string.Create(CultureInfo.InvariantCulture,
                $"v2 body ({v2Body.Length} bytes) parse, one thread: one-pass reader {ParseMicroseconds(() => InferRequestParser.Parse(v2Body)):0.0} µs, " +
                $"document parser {ParseMicroseconds(() => InferRequestParser.ParseDocument(v2Body)):0.0} µs");
            Console.WriteLine($"load average before: {LoadAverage()}");
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"requests per cell: {string.Join(", ", Concurrency.Select(c => $"c={c} {c * PerWorker(c)}"))} timed, after {WarmUpCalls} untimed warm-up calls; " +
                $"{Rounds} measured rounds after one warm-up round, sides alternating"));

            // Every server runs for the whole benchmark; each round measures every scenario, in the opposite order to the
            // round before, so neither side of a ratio always runs first (warm caches, leftover garbage, other work on the cores).
            using var predict = Host(app => app.MapPredict<Input, Output>("/predict"),
                services => services.AddPredictionEnginePool<Input, Output>().FromFile(zip, watchForChanges: false));
            // The same ONNX Runtime settings as (c): one intra-op thread. REST and gRPC serve the same model and batcher.
            using var v2 = Host(app =>
                {
                    app.MapOpenInference();
                    app.MapOpenInferenceGrpc();
                }, services => services.AddOnnxInference().AddModel("mlp", onnx, o =>
                {
                    o.MaxBatchSize = 32;
                    o.MaxQueueDelayMicroseconds = 200;
                    o.IntraOpNumThreads = 1;
                    o.WatchForChanges = false;
                }), grpc: true);
            // The floor under any HTTP endpoint here: Kestrel and HttpClient moving the same body, with no JSON and no model.
            using var echo = Host(app => app.MapPost("/empty", async (HttpContext context) =>
            {
                await context.Request.Body.CopyToAsync(Stream.Null);
                return Results.Ok();
            }), _ => { });
            v2.Services.GetRequiredService<OnnxModelRegistry>().TryGet("mlp", out var model);
            using var channel = GrpcChannel.ForAddress(v2.GrpcUrl!, new GrpcChannelOptions
            {
                HttpHandler = new SocketsHttpHandler { EnableMultipleHttp2Connections = true, UseProxy = false },
            });
            var grpcClient = new GRPCInferenceService.GRPCInferenceServiceClient(channel);
            var grpcRequest = new ModelInferRequest { ModelName = "mlp" };
            var grpcInput = new ModelInferRequest.Types.InferInputTensor { Name = "input", Datatype = "FP32" };
            grpcInput.Shape.AddRange([1, Features]);
            grpcRequest.Inputs.Add(grpcInput);
            grpcRequest.RawInputContents.Add(ByteString.CopyFrom(MemoryMarshal.AsBytes(sample.AsSpan())));

            var scenarios = new (string Name, Func<int, Stats> Run)[]
            {
                ("(c) in-process ORT", c => InProcess(onnx, sample, c)),
                ("(a) MapPredict + pool", c => Load(predict.Url + "/predict", predictBody, c)),
                ("(b) v2 REST, dynamic batching", c => Load(v2.Url + "/v2/models/mlp/infer", v2Body, c)),
                ("(e) v2 gRPC, raw contents", c => Measure(async () => await grpcClient.ModelInferAsync(grpcRequest), c)),
                ("(d) HTTP only, same body", c => Load(echo.Url + "/empty", v2Body, c)),
            };
            var results = new Dictionary<(string Name, int Concurrency), List<Stats>>();
            var batches = new List<double>();
            // Round 0 warms every scenario up (the tiered JIT reaches its final code only after some calls and a pause) and is not counted.
            foreach (var (_, run) in scenarios)
                foreach (var c in Concurrency) run(c);
            Thread.Sleep(500);
            for (int round = 1; round <= Rounds; round++)
            {
                var order = round % 2 == 1 ? scenarios : [.. scenarios.Reverse()];
                foreach (var (name, run) in order)
                {
                    foreach (var c in Concurrency)
                    {
                        long runsBefore = model.RunCount;
                        var stats = run(c);
                        if (name.StartsWith("(b)", StringComparison.Ordinal) && c == 32) batches.Add((double)stats.Requests / (model.RunCount - runsBefore));
                        (results.TryGetValue((name, c), out var list) ? list : results[(name, c)] = []).Add(stats);
                    }
                }
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"round {round}/{Rounds}: {Summary(results, round - 1)}"));
            }
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"load average after:  {LoadAverage()}; the run took {total.Elapsed.TotalSeconds:0} s"));

            Console.WriteLine(parseLine);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"(b) requests per ONNX Runtime run at c=32, per round: {string.Join(", ", batches.Select(b => b.ToString("0.0", CultureInfo.InvariantCulture)))}"));
            Console.WriteLine("cpu µs/req: this process's CPU time (server and load generator) per request; less sensitive to other work on the machine than wall time.");
            Console.WriteLine($"medians over {Rounds} rounds:");
            Console.WriteLine($"{"scenario",-32} {"conc",4} {"req/s",10} {"p50 µs",10} {"p99 µs",10} {"cpu µs/req",11}");
            foreach (var ((name, c), list) in results.OrderBy(r => r.Key.Name).ThenBy(r => r.Key.Concurrency))
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{name,-32} {c,4} {Statistics.Median(list.Select(s => s.Rps)),10:0} {Statistics.Median(list.Select(s => s.P50)),10:0} {Statistics.Median(list.Select(s => s.P99)),10:0} {Statistics.Median(list.Select(s => s.CpuMicroseconds)),11:0}"));
            var x = Statistics.Median(Enumerable.Range(0, Rounds).Select(r => Cell(results, "(b)", 1, r).P50 - Cell(results, "(d)", 1, r).P50));
            var y = Statistics.Median(Enumerable.Range(0, Rounds).Select(r => Cell(results, "(b)", 32, r).Rps / Cell(results, "(a)", 32, r).Rps));
            var z = Statistics.Median(Enumerable.Range(0, Rounds).Select(r => Cell(results, "(e)", 32, r).Rps / Cell(results, "(b)", 32, r).Rps));
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"serving: v2 c=1 p50 over bare HTTP = {x:0} µs; v2/MapPredict req/s c=32 = {y:0.00}; grpc/rest req/s c=32 = {z:0.00}"));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private const int Rounds = 5;

    private static Stats Cell(Dictionary<(string Name, int Concurrency), List<Stats>> results, string prefix, int c, int round) =>
        results.First(r => r.Key.Name.StartsWith(prefix, StringComparison.Ordinal) && r.Key.Concurrency == c).Value[round];

    /// <summary>One round's three figures, so a drifting machine shows in the log.</summary>
    private static string Summary(Dictionary<(string Name, int Concurrency), List<Stats>> results, int round) =>
        string.Create(CultureInfo.InvariantCulture,
            $"v2 c=1 p50 over bare HTTP {Cell(results, "(b)", 1, round).P50 - Cell(results, "(d)", 1, round).P50:0} µs, " +
            $"v2/MapPredict c=32 {Cell(results, "(b)", 32, round).Rps / Cell(results, "(a)", 32, round).Rps:0.00}, " +
            $"grpc/rest c=32 {Cell(results, "(e)", 32, round).Rps / Cell(results, "(b)", 32, round).Rps:0.00}");


    private static void SaveMlNetModel(string onnx, string zip)
    {
        var ml = new MLContext(seed: 0);
        var empty = ml.Data.LoadFromEnumerable(new[] { new Input { Values = new float[Features] } });
        var model = ml.Transforms.ApplyOnnxModel(["output"], ["input"], onnx).Fit(empty);
        ml.Model.Save(model, empty.Schema, zip);
    }

    /// <summary>Requests/s, latency percentiles (µs) and this process's CPU µs per request of one measured load.</summary>
    private sealed record Stats(double Rps, double P50, double P99, double CpuMicroseconds, int Requests);

    /// <summary>ONNX Runtime's fastest managed path (OrtValue over the caller's array), each call copying the result out as a server must.</summary>
    private static Stats InProcess(string onnx, float[] sample, int concurrency)
    {
        using var options = new Microsoft.ML.OnnxRuntime.SessionOptions { IntraOpNumThreads = 1 };
        using var session = new InferenceSession(onnx, options);
        using var runOptions = new RunOptions();
        string[] inputNames = ["input"], outputNames = [.. session.OutputNames];
        void Call()
        {
            using var input = OrtValue.CreateTensorValueFromMemory(sample, [1L, Features]);
            using var results = session.Run(runOptions, inputNames, [input], outputNames);
            _ = results[0].GetTensorDataAsSpan<float>().ToArray();
        }
        return Measure(() => { Call(); return Task.CompletedTask; }, concurrency);
    }

    /// <summary>Posts the same pre-serialized body from <paramref name="concurrency"/> workers, one connection each.</summary>
    private static Stats Load(string url, byte[] body, int concurrency)
    {
        using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = concurrency, UseProxy = false, UseCookies = false })
        {
            Timeout = TimeSpan.FromSeconds(30),
        };
        var contentType = new MediaTypeHeaderValue("application/json");
        return Measure(async () =>
        {
            using var content = new ByteArrayContent(body);
            content.Headers.ContentType = contentType;
            using var response = await client.PostAsync(url, content);
            response.EnsureSuccessStatusCode();
            await response.Content.ReadAsByteArrayAsync();
        }, concurrency);
    }

    /// <summary>Mean µs per call over a bounded number of calls, after a warm-up long enough for the JIT's optimized code.</summary>
    private static double ParseMicroseconds(Action parse)
    {
        // The tiered JIT reaches its final code in steps (instrumented, then optimized), each compiled in the background once
        // calls pause; without the pauses the timed loop can run the slower intermediate code.
        for (int round = 0; round < 3; round++)
        {
            for (int i = 0; i < 1000; i++) parse();
            Thread.Sleep(200);
        }
        const int calls = 2000;
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < calls; i++) parse();
        return clock.Elapsed.TotalMicroseconds / calls;
    }

    /// <summary>The 1-minute load average: the other work sharing this machine's cores during the run.</summary>
    private static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? File.ReadAllText("/proc/loadavg").Split(' ')[0] + $" on {Environment.ProcessorCount} cores" : "n/a";

    /// <summary>Calls per worker in one measured cell: about <see cref="CellRequests"/> per cell at every concurrency.</summary>
    private static int PerWorker(int concurrency) => Math.Max(100, CellRequests / concurrency);

    /// <summary>
    /// Timed requests per cell. A cell of ~1,200 requests left the c=1 p50 difference between two cells (a few tens of
    /// µs) at the mercy of one burst of other work; 15,000 keeps the whole run under two minutes on 2 cores (6,000 took 43 s).
    /// </summary>
    private const int CellRequests = 15000;

    /// <summary>Untimed calls before each cell, one at a time, so connections are open and the path is hot.</summary>
    private const int WarmUpCalls = 200;

    /// <summary>Warm-up, then <c>concurrency</c> workers × a bounded number of calls.</summary>
    private static Stats Measure(Func<Task> call, int concurrency)
    {
        const int warmUp = WarmUpCalls;
        for (int i = 0; i < warmUp; i++) call().GetAwaiter().GetResult();
        var perWorker = PerWorker(concurrency);
        var latencies = new double[concurrency * perWorker];
        using var process = Process.GetCurrentProcess();
        var cpuBefore = process.TotalProcessorTime;
        var clock = Stopwatch.StartNew();
        var workers = Enumerable.Range(0, concurrency).Select(w => Task.Run(async () =>
        {
            for (int i = 0; i < perWorker; i++)
            {
                var start = Stopwatch.GetTimestamp();
                await call();
                latencies[w * perWorker + i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
            }
        })).ToArray();
        Task.WaitAll(workers);
        var seconds = clock.Elapsed.TotalSeconds;
        process.Refresh();
        var cpu = (process.TotalProcessorTime - cpuBefore).TotalMicroseconds / latencies.Length;
        Array.Sort(latencies);
        return new Stats(latencies.Length / seconds, latencies[latencies.Length / 2], latencies[(int)(latencies.Length * 0.99)], cpu, warmUp + latencies.Length);
    }

    private sealed class Server(WebApplication app, string url, string? grpcUrl) : IDisposable
    {
        public string Url { get; } = url;
        public string? GrpcUrl { get; } = grpcUrl;
        public IServiceProvider Services => app.Services;
        public void Dispose() => app.StopAsync().GetAwaiter().GetResult();
    }

    private static Server Host(Action<WebApplication> map, Action<IServiceCollection> services, bool grpc = false)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        // HTTP/1.1 for the REST routes, and with grpc a second port of plain-text HTTP/2 (h2c) for gRPC.
        builder.WebHost.UseKestrel(k =>
        {
            k.Listen(System.Net.IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http1);
            if (grpc) k.Listen(System.Net.IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http2);
        });
        services(builder.Services);
        var app = builder.Build();
        map(app);
        app.StartAsync().GetAwaiter().GetResult();
        var urls = app.Urls.ToList();
        return new Server(app, urls[0], grpc ? urls[1] : null);
    }
}
