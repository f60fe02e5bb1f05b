using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Json;
using System.Text;
using Lightning.Onnx;
using Lightning.Serving;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using static TorchSharp.torch;

namespace Lightning.Benchmarks;

/// <summary>
/// Requests/s and latency on 127.0.0.1 for the same ONNX model served three ways: (a) MapPredict with the
/// PredictionEnginePool (ML.NET's OnnxTransformer), (b) Open Inference Protocol v2 with dynamic batching, (c) ONNX
/// Runtime called in-process. Bounded request counts; one table from one run.
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

            var rows = new List<(string Name, int Concurrency, double Rps, double P50, double P99)>();
            foreach (var c in Concurrency) rows.Add(("(c) in-process ORT", c, InProcess(onnx, sample, c, out var p50, out var p99), p50, p99));
            using (var predict = Host(app => app.MapPredict<Input, Output>("/predict"),
                       services => services.AddPredictionEnginePool<Input, Output>().FromFile(zip, watchForChanges: false)))
            {
                foreach (var c in Concurrency)
                    rows.Add(("(a) MapPredict + pool", c, Load(predict.Url + "/predict", () => JsonContent.Create(new Input { Values = sample }), c, out var p50, out var p99), p50, p99));
            }
            using (var v2 = Host(app => app.MapOpenInference(),
                       services => services.AddOnnxInference().AddModel("mlp", onnx, o => { o.MaxBatchSize = 32; o.MaxQueueDelayMicroseconds = 200; o.WatchForChanges = false; })))
            {
                var json = $"{{\"inputs\":[{{\"name\":\"input\",\"shape\":[1,{Features}],\"datatype\":\"FP32\",\"data\":[{string.Join(',', sample.Select(v => v.ToString("R", CultureInfo.InvariantCulture)))}]}}]}}";
                foreach (var c in Concurrency)
                    rows.Add(("(b) v2 infer, dynamic batching", c, Load(v2.Url + "/v2/models/mlp/infer", () => new StringContent(json, Encoding.UTF8, "application/json"), c, out var p50, out var p99), p50, p99));
            }

            Console.WriteLine($"{"scenario",-32} {"conc",4} {"req/s",10} {"p50 µs",10} {"p99 µs",10}");
            foreach (var r in rows.OrderBy(r => r.Name).ThenBy(r => r.Concurrency))
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{r.Name,-32} {r.Concurrency,4} {r.Rps,10:0} {r.P50,10:0} {r.P99,10:0}"));
            double Rps(string prefix, int c) => rows.First(r => r.Name.StartsWith(prefix) && r.Concurrency == c).Rps;
            double P50(string prefix, int c) => rows.First(r => r.Name.StartsWith(prefix) && r.Concurrency == c).P50;
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"serving: v2/MapPredict req/s at concurrency 32 = {Rps("(b)", 32) / Rps("(a)", 32):0.00} (goal >= 2); " +
                $"HTTP+JSON p50 overhead at concurrency 1 = {P50("(b)", 1) - P50("(c)", 1):0} µs (goal <= 100)"));
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

    private static double InProcess(string onnx, float[] sample, int concurrency, out double p50, out double p99)
    {
        using var options = new Microsoft.ML.OnnxRuntime.SessionOptions { IntraOpNumThreads = 1 };
        using var session = new InferenceSession(onnx, options);
        void Call()
        {
            var input = new DenseTensor<float>(sample, [1, Features]);
            using var results = session.Run([NamedOnnxValue.CreateFromTensor("input", input)]);
            _ = results.First().AsTensor<float>()[0, 0];
        }
        return Measure(_ => { Call(); return Task.CompletedTask; }, concurrency, out p50, out p99);
    }

    private static double Load(string url, Func<HttpContent> body, int concurrency, out double p50, out double p99)
    {
        using var client = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = concurrency }) { Timeout = TimeSpan.FromSeconds(30) };
        return Measure(async _ =>
        {
            using var response = await client.PostAsync(url, body());
            response.EnsureSuccessStatusCode();
            await response.Content.ReadAsByteArrayAsync();
        }, concurrency, out p50, out p99);
    }

    /// <summary>Warm-up, then <c>concurrency</c> workers × a bounded number of calls; returns calls/s and the latency percentiles in µs.</summary>
    private static double Measure(Func<int, Task> call, int concurrency, out double p50, out double p99)
    {
        for (int i = 0; i < 50; i++) call(i).GetAwaiter().GetResult();
        var perWorker = Math.Max(40, 1200 / concurrency);
        var latencies = new double[concurrency * perWorker];
        var clock = Stopwatch.StartNew();
        var workers = Enumerable.Range(0, concurrency).Select(w => Task.Run(async () =>
        {
            for (int i = 0; i < perWorker; i++)
            {
                var start = Stopwatch.GetTimestamp();
                await call(i);
                latencies[w * perWorker + i] = Stopwatch.GetElapsedTime(start).TotalMicroseconds;
            }
        })).ToArray();
        Task.WaitAll(workers);
        var seconds = clock.Elapsed.TotalSeconds;
        Array.Sort(latencies);
        p50 = latencies[latencies.Length / 2];
        p99 = latencies[(int)(latencies.Length * 0.99)];
        return latencies.Length / seconds;
    }

    private sealed class Server(WebApplication app, string url) : IDisposable
    {
        public string Url { get; } = url;
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
