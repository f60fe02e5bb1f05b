using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

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
        // The server's own Debug events (a reload retrying a file still held) are signals some tests wait for.
        builder.Logging.AddFilter("Lightning.Serving", LogLevel.Debug);
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
