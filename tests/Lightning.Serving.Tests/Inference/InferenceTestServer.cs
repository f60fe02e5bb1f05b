using System.Collections.Concurrent;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Lightning.Onnx;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.ML.OnnxRuntime;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Serving.Tests.Inference;

/// <summary>An in-process TestServer serving ONNX models through the v2 endpoints.</summary>
internal sealed class InferenceTestServer : IAsyncDisposable
{
    private InferenceTestServer(WebApplication app, LogCollector logs)
    {
        App = app;
        Logs = logs;
        Client = app.GetTestClient();
    }

    public WebApplication App { get; }

    public HttpClient Client { get; }

    public LogCollector Logs { get; }

    internal OnnxModelRegistry Registry => App.Services.GetRequiredService<OnnxModelRegistry>();

    internal ServedModel Model(string name) => Registry.TryGet(name, out var m) ? m : throw new KeyNotFoundException(name);

    public static WebApplication Build(Action<OnnxInferenceBuilder> models, Action<OnnxInferenceOptions>? configure, LogCollector logs)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(logs);
        builder.Logging.SetMinimumLevel(LogLevel.Debug);
        models(builder.Services.AddOnnxInference(configure));
        var app = builder.Build();
        app.MapOpenInference();
        return app;
    }

    public static async Task<InferenceTestServer> StartAsync(Action<OnnxInferenceBuilder> models, Action<OnnxInferenceOptions>? configure = null)
    {
        var logs = new LogCollector();
        var app = Build(models, configure, logs);
        await app.StartAsync();
        return new InferenceTestServer(app, logs);
    }

    public async Task<(HttpResponseMessage Response, JsonNode? Body)> PostAsync(string path, string json)
    {
        using var content = new StringContent(json, System.Text.Encoding.UTF8, "application/json");
        var response = await Client.PostAsync(path, content);
        return (response, await ReadAsync(response));
    }

    public async Task<(HttpResponseMessage Response, JsonNode? Body)> GetAsync(string path)
    {
        var response = await Client.GetAsync(path);
        return (response, await ReadAsync(response));
    }

    private static async Task<JsonNode?> ReadAsync(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        return text.Length == 0 ? null : JsonNode.Parse(text);
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
    }
}

/// <summary>Collects log lines of every category.</summary>
internal sealed class LogCollector : ILoggerProvider
{
    public ConcurrentQueue<(LogLevel Level, string Message)> Entries { get; } = new();

    public ILogger CreateLogger(string categoryName) => new Logger(this);

    public void Dispose() { }

    private sealed class Logger(LogCollector owner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            owner.Entries.Enqueue((logLevel, formatter(state, exception)));
    }
}

/// <summary>Tiny ONNX models exported with Lightning's exporter, and reference runs straight on ONNX Runtime.</summary>
internal static class TestModels
{
    private static readonly object TorchLock = new();

    /// <summary><c>Linear(4, 3) → ReLU</c>, input <c>input</c> [batch, 4] FP32, output <c>output</c> [batch, 3].</summary>
    public static string Linear(string path, int seed = 1)
    {
        lock (TorchLock)
        {
            torch.manual_seed(seed);
            using var module = nn.Sequential(("fc", nn.Linear(4, 3)), ("relu", nn.ReLU()));
            using var sample = torch.randn(2, 4);
            module.ToOnnx(path, sample);
        }
        return path;
    }

    /// <summary><c>Embedding(10, 3)</c>, input <c>input</c> [batch, 5] INT64, output <c>output</c> [batch, 5, 3].</summary>
    public static string Embedding(string path)
    {
        lock (TorchLock)
        {
            torch.manual_seed(3);
            using var module = nn.Sequential(("emb", nn.Embedding(10, 3)));
            using var sample = torch.randint(0, 10, [2, 5], dtype: ScalarType.Int64);
            module.ToOnnx(path, sample);
        }
        return path;
    }

    /// <summary>Runs the model on one FP32 input on ONNX Runtime directly.</summary>
    public static float[] Reference(string path, float[] data, long[] shape)
    {
        using var session = new InferenceSession(path);
        using var input = OrtValue.CreateTensorValueFromMemory(data, shape);
        using var outputs = session.Run(new RunOptions(), [session.InputNames[0]], [input], session.OutputNames);
        return outputs.First().GetTensorDataAsSpan<float>().ToArray();
    }

    public static string InferBody(float[] data, long rows, string? id = null) =>
        JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["id"] = id,
            ["inputs"] = new[] { new { name = "input", shape = new[] { rows, 4L }, datatype = "FP32", data } },
        });

    public static float[] Floats(JsonNode? node) => [.. node!.AsArray().Select(v => v!.GetValue<float>())];

    public static void AssertClose(float[] expected, float[] actual)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5 + 1e-4 * Math.Abs(expected[i]), $"element {i}: expected {expected[i]}, got {actual[i]}");
    }
}
