using Lightning.Testing;
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

        Assert.True(Wait.Until(() => token.HasChanged), "writing the file did not fire the token");
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

        Assert.True(Wait.Until(() => token.HasChanged), "renaming over the file did not fire the token");
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
        Assert.True(Wait.Until(() => token.HasChanged), "the write after a failed reload did not fire the token");
    }
}
