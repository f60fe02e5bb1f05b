using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Lightning.Serving.Tests;

/// <summary>Serves the test models over HTTP on 127.0.0.1 with an ETag the test controls, counting requests.</summary>
internal sealed class ModelServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private ModelServer(WebApplication app) => _app = app;

    public volatile byte[] Bytes = TestModels.A;
    public volatile string? ETag = "\"v1\"";
    public int Gets;
    public int Heads;

    public Uri Uri { get; private set; } = null!;

    public static async Task<ModelServer> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseKestrel().UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var server = new ModelServer(app);
        app.MapMethods("/model.zip", ["GET", "HEAD"], (HttpContext context) =>
        {
            var head = HttpMethods.IsHead(context.Request.Method);
            Interlocked.Increment(ref head ? ref server.Heads : ref server.Gets);
            if (server.ETag is string tag) context.Response.Headers.ETag = tag;
            context.Response.ContentType = "application/zip";
            context.Response.ContentLength = server.Bytes.Length;
            return head ? Task.CompletedTask : context.Response.Body.WriteAsync(server.Bytes).AsTask();
        });
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        server.Uri = new Uri(address + "/model.zip");
        return server;
    }

    public ValueTask DisposeAsync() => _app.DisposeAsync();
}
