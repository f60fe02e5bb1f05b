using Lightning.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Lightning.Serving.Tests;

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

        Assert.True(Wait.Until(() => token.HasChanged), "a new ETag did not fire the token");
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

        Assert.True(Wait.Until(() => Volatile.Read(ref server.Heads) >= 3), "the URI was not polled");

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

        // Start decides before it returns: no ETag, so no poll is ever scheduled (rather than "none came within 200 ms").
        Assert.False(loader.Polling);
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
        Assert.True(Wait.Until(() => Volatile.Read(ref server.Gets) >= 3), "the broken model was not retried");
        Assert.False(token.HasChanged);
        Assert.Same(model, loader.GetModel());

        server.Bytes = TestModels.B;
        server.ETag = "\"v3\"";
        Assert.True(Wait.Until(() => token.HasChanged), "the good model after a broken one was not loaded");
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

        Assert.True(Wait.Until(() => pool.GetModelInfo("remote").Version == 2), "the pool did not pick up the new model");
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
