using Lightning.Testing;
using Lightning.Serving.Tests.Inference;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.ML;

namespace Lightning.Serving.Tests;

public sealed class PredictionEnginePoolTests : IDisposable
{
    private static readonly SizeInput s_example = new() { Size = 0.5f };
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private string WriteModel(byte[] bytes, string name = "model.zip")
    {
        var path = _dir.Combine(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public void FromFile_DefaultModel_Predicts()
    {
        var path = WriteModel(TestModels.A);
        using var services = TestModels.Services(b => b.FromFile(path, watchForChanges: false));
        var pool = services.GetRequiredService<PredictionEnginePool<SizeInput, ScoreOutput>>();

        Assert.True(TestModels.IsA(pool.Predict(s_example).Score));
        Assert.NotNull(pool.GetModel());
        var info = pool.GetModelInfo();
        Assert.Equal(1, info.Version);
        Assert.Equal(Path.GetFullPath(path), info.Source);
        Assert.Equal("cpu", info.Device);
    }

    [Fact]
    public void FromFile_NamedModel_LoadsByName()
    {
        var a = WriteModel(TestModels.A, "a.zip");
        var b = WriteModel(TestModels.B, "b.zip");
        using var services = TestModels.Services(builder => builder
            .FromFile(modelName: "model1", filePath: a, watchForChanges: false)
            .FromFile("model2", b, watchForChanges: false));
        var pool = services.GetRequiredService<PredictionEnginePool<SizeInput, ScoreOutput>>();

        Assert.NotNull(pool.GetModel("model1"));
        Assert.True(TestModels.IsA(pool.Predict("model1", s_example).Score));
        Assert.True(TestModels.IsB(pool.Predict("model2", s_example).Score));
        Assert.Equal("model2", pool.GetModelInfo("model2").ModelName);
    }

    [Fact]
    public void GetPredictionEngine_NoDefaultModel_ThrowsMicrosoftExtensionsMLMessage()
    {
        var path = WriteModel(TestModels.A);
        using var services = TestModels.Services(b => b.FromFile("named", path, watchForChanges: false));
        var pool = services.GetRequiredService<PredictionEnginePool<SizeInput, ScoreOutput>>();

        var e = Assert.Throws<ArgumentException>(() => pool.GetPredictionEngine());
        Assert.StartsWith("You need to configure a default, not named, model before you use this method.", e.Message);
        Assert.Throws<ArgumentException>(() => pool.GetModel());
        Assert.Throws<ArgumentException>(() => pool.Predict(s_example));
    }

    [Fact]
    public void GetPredictionEngine_UnknownName_ThrowsNamingTheModel()
    {
        var path = WriteModel(TestModels.A);
        using var services = TestModels.Services(b => b.FromFile(path, watchForChanges: false));
        var pool = services.GetRequiredService<PredictionEnginePool<SizeInput, ScoreOutput>>();

        var e = Assert.Throws<ArgumentNullException>(() => pool.GetPredictionEngine("../../etc/passwd"));
        Assert.Contains("No model named '../../etc/passwd' is configured", e.Message);
        Assert.Contains("the default model", e.Message);
    }

    [Fact]
    public void FromFile_MissingFile_ThrowsMicrosoftExtensionsMLMessage()
    {
        var path = _dir.Combine("missing.zip");
        using var services = TestModels.Services(b => b.FromFile(path));

        var e = Assert.Throws<ArgumentException>(() => services.GetRequiredService<PredictionEnginePool<SizeInput, ScoreOutput>>());
        Assert.StartsWith($"The provided model file {path} doesn't exist.", e.Message);
    }

    [Fact]
    public void HotSwap_EngineRentedBeforeSwap_GoesBackToItsOwnGeneration()
    {
        var path = WriteModel(TestModels.A);
        using var services = TestModels.Services(b => b.FromFile(path));
        var pool = services.GetRequiredService<PredictionEnginePool<SizeInput, ScoreOutput>>();
        var oldEngine = pool.GetPredictionEngine();
        var oldGeneration = pool.GetGeneration("");
        Assert.True(TestModels.IsA(oldEngine.Predict(s_example).Score));

        TestModels.ReplaceAtomically(path, TestModels.B);
        Assert.True(Wait.Until(() => pool.GetModelInfo().Version == 2), "the rename-over was not reloaded");

        var newEngine = pool.GetPredictionEngine();
        Assert.NotSame(oldEngine, newEngine);
        Assert.True(TestModels.IsB(newEngine.Predict(s_example).Score));
        // The engine rented before the swap keeps its model until it is back.
        Assert.True(TestModels.IsA(oldEngine.Predict(s_example).Score));
        Assert.False(oldGeneration.IsDisposed);
        pool.ReturnPredictionEngine(newEngine);
        pool.ReturnPredictionEngine(oldEngine);

        Assert.True(oldGeneration.IsDisposed);
        for (var i = 0; i < 4; i++)
        {
            var engine = pool.GetPredictionEngine();
            Assert.NotSame(oldEngine, engine);
            Assert.True(TestModels.IsB(engine.Predict(s_example).Score));
            pool.ReturnPredictionEngine(engine);
        }
    }

    [Fact]
    public void PooledEngines_BeyondRetention_DoNotDisposeTheSharedModel()
    {
        var model = new CountingTransformer(new MLContext().Model.Load(new MemoryStream(TestModels.A), out _));
        var services = new ServiceCollection();
        services.AddPredictionEnginePool<SizeInput, ScoreOutput>();
        services.Configure<PredictionEnginePoolOptions<SizeInput, ScoreOutput>>(o => o.ModelLoader = new ManualModelLoader(model));
        using var provider = services.BuildServiceProvider();
        var pool = provider.GetRequiredService<PredictionEnginePool<SizeInput, ScoreOutput>>();

        var engines = Enumerable.Range(0, Environment.ProcessorCount * 2 + 2).Select(_ => pool.GetPredictionEngine()).ToList();
        foreach (var engine in engines) pool.ReturnPredictionEngine(engine);

        Assert.Equal(0, model.DisposeCount);
        Assert.True(TestModels.IsA(pool.Predict(s_example).Score));
    }

    [Fact]
    public void Reload_OldModel_DisposedOnceItsEnginesAreBack()
    {
        var ml = new MLContext();
        var first = new CountingTransformer(ml.Model.Load(new MemoryStream(TestModels.A), out _));
        var second = new CountingTransformer(ml.Model.Load(new MemoryStream(TestModels.B), out _));
        var loader = new ManualModelLoader(first);
        var services = new ServiceCollection();
        services.AddPredictionEnginePool<SizeInput, ScoreOutput>();
        services.Configure<PredictionEnginePoolOptions<SizeInput, ScoreOutput>>(o => o.ModelLoader = loader);
        using var provider = services.BuildServiceProvider();
        var pool = provider.GetRequiredService<PredictionEnginePool<SizeInput, ScoreOutput>>();
        var rented = pool.GetPredictionEngine();

        loader.Reload(second);

        Assert.Equal(0, first.DisposeCount);
        Assert.True(TestModels.IsB(pool.Predict(s_example).Score));
        pool.ReturnPredictionEngine(rented);
        Assert.Equal(1, first.DisposeCount);
        Assert.Equal(0, second.DisposeCount);
        Assert.Equal(2, pool.GetModelInfo().Version);
    }

    [Fact]
    public void ReturnPredictionEngine_Twice_TakesItBackOnce()
    {
        var path = WriteModel(TestModels.A);
        using var services = TestModels.Services(b => b.FromFile(path, watchForChanges: false));
        var pool = services.GetRequiredService<PredictionEnginePool<SizeInput, ScoreOutput>>();
        var engine = pool.GetPredictionEngine();
        pool.ReturnPredictionEngine(engine);
        pool.ReturnPredictionEngine(engine);

        var first = pool.GetPredictionEngine();
        var second = pool.GetPredictionEngine();

        Assert.NotSame(first, second);
        Assert.Throws<ArgumentNullException>(() => pool.ReturnPredictionEngine(null!));
    }

    [Fact]
    public void FailedReload_CorruptFile_KeepsOldModelThenRecovers()
    {
        var path = WriteModel(TestModels.A);
        var logs = new LogCollector();
        using var services = TestModels.Services(b => b.FromFile(path), logs);
        var pool = services.GetRequiredService<PredictionEnginePool<SizeInput, ScoreOutput>>();

        File.WriteAllBytes(path, TestModels.Corrupt);
        // The loader says when it tried the corrupt file and gave up: only then is "the old model still serves" a result.
        Assert.True(logs.WaitFor(e => e.Level == LogLevel.Error && e.Message.StartsWith($"Reloading model file {path} failed"), TimeSpan.FromSeconds(30)),
            "the corrupt file was never tried");
        Assert.Equal(1, pool.GetModelInfo().Version);
        Assert.True(TestModels.IsA(pool.Predict(s_example).Score));

        File.WriteAllBytes(path, TestModels.B);
        Assert.True(Wait.Until(() => pool.GetModelInfo().Version == 2), "the next good write was not reloaded");
        Assert.True(TestModels.IsB(pool.Predict(s_example).Score));
    }

    [Fact]
    public void Dispose_ThenGet_ThrowsObjectDisposed()
    {
        var path = WriteModel(TestModels.A);
        using var services = TestModels.Services(b => b.FromFile(path));
        var pool = services.GetRequiredService<PredictionEnginePool<SizeInput, ScoreOutput>>();
        var engine = pool.GetPredictionEngine();

        pool.Dispose();
        File.WriteAllBytes(path, TestModels.B);
        pool.Dispose();

        var e = Assert.Throws<ObjectDisposedException>(() => pool.GetPredictionEngine());
        Assert.Equal("PredictionEnginePool", e.ObjectName);
        pool.ReturnPredictionEngine(engine);
    }

    [Fact]
    public void UseGpu_WithoutCudaProvider_FallsBackAndReportsTheDevice()
    {
        var path = WriteModel(TestModels.A);
        using var services = TestModels.Services(b => b.UseGpu(0, fallbackToCpu: true).FromFile(path, watchForChanges: false));
        var pool = services.GetRequiredService<PredictionEnginePool<SizeInput, ScoreOutput>>();
        var context = services.GetRequiredService<IOptions<MLOptions>>().Value.MLContext;

        Assert.Equal(0, context.GpuDeviceId);
        Assert.True(context.FallbackToCpu);
        var info = pool.GetModelInfo();
        Assert.Equal(0, info.GpuDeviceId);
        Assert.True(info.FallbackToCpu);
        // The CPU build of ONNX Runtime has no CUDA provider; on a CUDA build this reads cuda:0.
        Assert.Contains(info.Device, new[] { "cpu", "cuda:0" });
        Assert.True(TestModels.IsA(pool.Predict(s_example).Score));
    }

    [Fact]
    public void Builder_NullServices_ThrowsArgumentException()
    {
        Assert.Throws<ArgumentException>(() => new PredictionEnginePoolBuilder<SizeInput, ScoreOutput>(null!));
    }
}
