using Lightning.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Lightning.Serving.Tests;

public sealed class FileModelLoaderTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static FileModelLoader NewLoader() =>
        new(Options.Create(new MLOptions()), NullLogger<FileModelLoader>.Instance);

    [Fact]
    public void GetModel_BeforeStart_Throws()
    {
        using var loader = NewLoader();

        var e = Assert.Throws<InvalidOperationException>(() => loader.GetModel());
        Assert.Equal("Start must be called on a ModelLoader before it can be used.", e.Message);
        Assert.Throws<InvalidOperationException>(() => loader.GetReloadToken());
    }

    [Fact]
    public void Start_ExistingFile_LoadsModel()
    {
        var path = _dir.Combine("model.zip");
        File.WriteAllBytes(path, TestModels.A);
        using var loader = NewLoader();

        loader.Start(path, watchForChanges: false);

        Assert.NotNull(loader.GetModel());
        Assert.False(loader.GetReloadToken().HasChanged);
    }

    [Fact]
    public void FileWritten_Watching_FiresToken()
    {
        var path = _dir.Combine("model.zip");
        File.WriteAllBytes(path, TestModels.A);
        using var loader = NewLoader();
        loader.Start(path, watchForChanges: true);
        var token = loader.GetReloadToken();
        var before = loader.GetModel();

        File.WriteAllBytes(path, TestModels.B);

        Assert.True(TestModels.WaitUntil(() => token.HasChanged), "writing the file did not fire the token");
        Assert.NotSame(before, loader.GetModel());
    }

    [Fact]
    public void FileRenamedOver_Watching_FiresToken()
    {
        var path = _dir.Combine("model.zip");
        File.WriteAllBytes(path, TestModels.A);
        using var loader = NewLoader();
        loader.Start(path, watchForChanges: true);
        var token = loader.GetReloadToken();

        TestModels.ReplaceAtomically(path, TestModels.B);

        Assert.True(TestModels.WaitUntil(() => token.HasChanged), "renaming over the file did not fire the token");
    }

    [Fact]
    public void CorruptWrite_KeepsTokenAndModel_NextWriteFires()
    {
        var path = _dir.Combine("model.zip");
        File.WriteAllBytes(path, TestModels.A);
        using var loader = NewLoader();
        loader.Start(path, watchForChanges: true);
        var token = loader.GetReloadToken();
        var model = loader.GetModel();

        File.WriteAllBytes(path, TestModels.Corrupt);
        loader.Reload();

        Assert.False(token.HasChanged);
        Assert.Same(model, loader.GetModel());
        File.WriteAllBytes(path, TestModels.B);
        Assert.True(TestModels.WaitUntil(() => token.HasChanged), "the write after a failed reload did not fire the token");
    }
}

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

public sealed class UriModelLoaderTests
{
    private static UriModelLoader NewLoader() =>
        new(Options.Create(new MLOptions()), NullLogger<UriModelLoader>.Instance);

    [Fact]
    public void GetModel_BeforeStart_Throws()
    {
        using var loader = NewLoader();

        var e = Assert.Throws<InvalidOperationException>(() => loader.GetModel());
        Assert.Equal("Start must be called on a ModelLoader before it can be used.", e.Message);
    }

    [Fact]
    public async Task ETagChanges_FiresTokenAndLoadsNewModel()
    {
        await using var server = await ModelServer.StartAsync();
        using var loader = NewLoader();
        loader.Start(server.Uri, TimeSpan.FromMilliseconds(20));
        var token = loader.GetReloadToken();
        var before = loader.GetModel();

        server.Bytes = TestModels.B;
        server.ETag = "\"v2\"";

        Assert.True(TestModels.WaitUntil(() => token.HasChanged), "a new ETag did not fire the token");
        Assert.NotSame(before, loader.GetModel());
        Assert.Equal("\"v2\"", loader.ETag);
    }

    [Fact]
    public async Task ETagUnchanged_PollsWithHeadOnly_NoReload()
    {
        await using var server = await ModelServer.StartAsync();
        using var loader = NewLoader();
        loader.Start(server.Uri, TimeSpan.FromMilliseconds(10));
        var token = loader.GetReloadToken();

        Assert.True(TestModels.WaitUntil(() => Volatile.Read(ref server.Heads) >= 3), "the URI was not polled");

        Assert.False(token.HasChanged);
        Assert.Equal(1, Volatile.Read(ref server.Gets));
    }

    [Fact]
    public async Task NoETag_LoadsWithoutPolling()
    {
        await using var server = await ModelServer.StartAsync();
        server.ETag = null;
        using var loader = NewLoader();

        loader.Start(server.Uri, TimeSpan.FromMilliseconds(10));
        await Task.Delay(200);

        Assert.NotNull(loader.GetModel());
        Assert.Equal(0, Volatile.Read(ref server.Heads));
    }

    [Fact]
    public async Task CorruptDownload_KeepsModel_NextETagRecovers()
    {
        await using var server = await ModelServer.StartAsync();
        using var loader = NewLoader();
        loader.Start(server.Uri, TimeSpan.FromMilliseconds(20));
        var token = loader.GetReloadToken();
        var model = loader.GetModel();

        server.Bytes = TestModels.Corrupt;
        server.ETag = "\"broken\"";
        Assert.True(TestModels.WaitUntil(() => Volatile.Read(ref server.Gets) >= 3), "the broken model was not retried");
        Assert.False(token.HasChanged);
        Assert.Same(model, loader.GetModel());

        server.Bytes = TestModels.B;
        server.ETag = "\"v3\"";
        Assert.True(TestModels.WaitUntil(() => token.HasChanged), "the good model after a broken one was not loaded");
    }

    [Fact]
    public async Task FromUri_PoolServesAndReloads()
    {
        await using var server = await ModelServer.StartAsync();
        using var services = TestModels.Services(b => b.FromUri("remote", server.Uri.ToString(), TimeSpan.FromMilliseconds(20)));
        var pool = services.GetRequiredService<PredictionEnginePool<SizeInput, ScoreOutput>>();
        var example = new SizeInput { Size = 0.5f };
        Assert.True(TestModels.IsA(pool.Predict("remote", example).Score));
        Assert.Equal(server.Uri.ToString(), pool.GetModelInfo("remote").Source);

        server.Bytes = TestModels.B;
        server.ETag = "\"v2\"";

        Assert.True(TestModels.WaitUntil(() => pool.GetModelInfo("remote").Version == 2), "the pool did not pick up the new model");
        Assert.True(TestModels.IsB(pool.Predict("remote", example).Score));
    }

    [Fact]
    public void Start_NonHttpUri_ThrowsNamingIt()
    {
        using var loader = NewLoader();

        var e = Assert.Throws<ArgumentException>(() => loader.Start(new Uri("file:///etc/passwd"), TimeSpan.FromMinutes(1)));
        Assert.Contains("file:///etc/passwd", e.Message);
    }
}
