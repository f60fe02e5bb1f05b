using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Lightning.Onnx;
using Lightning.Serving;
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
/// Requests/s and latency on 127.0.0.1 for the same ONNX model served three ways: (a) MapPredict with the
/// PredictionEnginePool (ML.NET's OnnxTransformer), (b) Open Inference Protocol v2 with dynamic batching, (c) ONNX
/// Runtime called in-process, and (d) the bare HTTP round trip with the same body, the floor under (a) and (b).
/// Bounded request counts; one table from one run. The load generator shares the machine's cores with the server.
/// </summary>
internal static class ServingBenchmark
{
    public const string Name = "serving";

    private const int Features = 784;
    private static readonly int[] Concurrency = [1, 8, 32];

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

            var rows = new List<(string Name, int Concurrency, Stats Stats)>();
            var batches = new List<string>();
            foreach (var c in Concurrency) rows.Add(("(c) in-process ORT", c, InProcess(onnx, sample, c)));
            using (var predict = Host(app => app.MapPredict<Input, Output>("/predict"),
                       services => services.AddPredictionEnginePool<Input, Output>().FromFile(zip, watchForChanges: false)))
            {
                foreach (var c in Concurrency) rows.Add(("(a) MapPredict + pool", c, Load(predict.Url + "/predict", predictBody, c)));
            }
            // The same ONNX Runtime settings as (c): one intra-op thread.
            using (var v2 = Host(app => app.MapOpenInference(), services => services.AddOnnxInference().AddModel("mlp", onnx, o =>
                   {
                       o.MaxBatchSize = 32;
                       o.MaxQueueDelayMicroseconds = 200;
                       o.IntraOpNumThreads = 1;
                       o.WatchForChanges = false;
                   })))
            {
                v2.Services.GetRequiredService<OnnxModelRegistry>().TryGet("mlp", out var model);
                foreach (var c in Concurrency)
                {
                    long runsBefore = model.RunCount;
                    var stats = Load(v2.Url + "/v2/models/mlp/infer", v2Body, c);
                    rows.Add(("(b) v2 infer, dynamic batching", c, stats));
                    batches.Add(string.Create(CultureInfo.InvariantCulture, $"c={c}: {(double)stats.Requests / (model.RunCount - runsBefore):0.0}"));
                }
            }
            // The floor under any HTTP endpoint here: Kestrel and HttpClient moving the same body, with no JSON and no model.
            using (var echo = Host(app => app.MapPost("/empty", async (HttpContext context) =>
                   {
                       await context.Request.Body.CopyToAsync(Stream.Null);
                       return Results.Ok();
                   }), _ => { }))
            {
                foreach (var c in Concurrency) rows.Add(("(d) HTTP only, same body", c, Load(echo.Url + "/empty", v2Body, c)));
            }
            Console.WriteLine($"load average after:  {LoadAverage()}");

            Console.WriteLine(parseLine);
            Console.WriteLine($"(b) requests per ONNX Runtime run: {string.Join(", ", batches)}");
            Console.WriteLine("cpu µs/req: this process's CPU time (server and load generator) per request; less sensitive to other work on the machine than wall time.");
            Console.WriteLine($"{"scenario",-32} {"conc",4} {"req/s",10} {"p50 µs",10} {"p99 µs",10} {"cpu µs/req",11}");
            foreach (var (name, c, stats) in rows.OrderBy(r => r.Name).ThenBy(r => r.Concurrency))
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{name,-32} {c,4} {stats.Rps,10:0} {stats.P50,10:0} {stats.P99,10:0} {stats.CpuMicroseconds,11:0}"));
            Stats Row(string prefix, int c) => rows.First(r => r.Name.StartsWith(prefix, StringComparison.Ordinal) && r.Concurrency == c).Stats;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"serving: v2/MapPredict req/s at concurrency 32 = {Row("(b)", 32).Rps / Row("(a)", 32).Rps:0.00} (goal >= 2); " +
                $"HTTP+JSON p50 overhead at concurrency 1 = {Row("(b)", 1).P50 - Row("(c)", 1).P50:0} µs (goal <= 100), " +
                $"of which the bare HTTP round trip (d) - (c) = {Row("(d)", 1).P50 - Row("(c)", 1).P50:0} µs"));
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

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

    /// <summary>Warm-up, then <c>concurrency</c> workers × a bounded number of calls.</summary>
    private static Stats Measure(Func<Task> call, int concurrency)
    {
        const int warmUp = 50;
        for (int i = 0; i < warmUp; i++) call().GetAwaiter().GetResult();
        var perWorker = Math.Max(40, 1200 / concurrency);
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

    private sealed class Server(WebApplication app, string url) : IDisposable
    {
        public string Url { get; } = url;
        public IServiceProvider Services => app.Services;
        public void Dispose() => app.StopAsync().GetAwaiter().GetResult();
    }

    private static Server Host(Action<WebApplication> map, Action<IServiceCollection> services)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        services(builder.Services);
        var app = builder.Build();
        map(app);
        app.StartAsync().GetAwaiter().GetResult();
        return new Server(app, app.Urls.First());
    }
}
