using System.Net;
using System.Runtime.InteropServices;
using Lightning.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.ML.OnnxRuntime;

namespace Lightning.Serving.Tests.Inference;

public sealed class InferenceModelLoadingTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    private static async Task<float[]> InferAsync(InferenceTestServer server, float[] row)
    {
        var (response, body) = await server.PostAsync("/v2/models/linear/infer", OnnxTestModels.InferBody(row, 1));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        return OnnxTestModels.Floats(body!["outputs"]![0]!["data"]);
    }

    [Fact]
    public async Task HotReload_FileReplaced_ServesNewModel_CorruptFileKeepsIt()
    {
        var path = OnnxTestModels.Linear(_dir.Combine("linear.onnx"), seed: 1);
        var replacement = OnnxTestModels.Linear(_dir.Combine("next.onnx.tmp"), seed: 2);
        float[] row = [1, 2, 3, 4];
        var before = OnnxTestModels.Reference(path, row, [1, 4]);
        var after = OnnxTestModels.Reference(replacement, row, [1, 4]);
        Assert.NotEqual(before, after);
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModel("linear", path, o => o.ReloadDebounceMilliseconds = 50));
        Approx.AssertClose(before, await InferAsync(server, row));

        File.Move(replacement, path, overwrite: true);
        await Wait.UntilAsync(() => server.Model("linear").Current!.Generation >= 2, "the reload");
        Approx.AssertClose(after, await InferAsync(server, row));
        var (_, metadata) = await server.GetAsync("/v2/models/linear");
        Assert.True(metadata!["parameters"]!["generation"]!.GetValue<long>() >= 2);

        await File.WriteAllTextAsync(path, "not an onnx model");
        await Wait.UntilAsync(async () => (await server.Client.GetStringAsync("/metrics"))
            .Contains("lightning_inference_model_reloads_total{model=\"linear\",result=\"failure\"}"), "the failed reload");
        Approx.AssertClose(after, await InferAsync(server, row));
        Assert.Contains(server.Logs.Entries, e => e.Level == LogLevel.Warning && e.Message.Contains("keeps serving"));
        var metrics = await server.Client.GetStringAsync("/metrics");
        Assert.Contains("lightning_inference_model_reloads_total{model=\"linear\",result=\"success\"}", metrics);
    }

    [Fact]
    public async Task HotReload_FileHeldByItsWriterPastTheDebounce_ServesNewModelOnceReleased()
    {
        var path = OnnxTestModels.Linear(_dir.Combine("linear.onnx"), seed: 1);
        var next = File.ReadAllBytes(OnnxTestModels.Linear(_dir.Combine("next.bin"), seed: 2));
        float[] row = [1, 2, 3, 4];
        var after = OnnxTestModels.Reference(_dir.Combine("next.bin"), row, [1, 4]);
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModel("linear", path, o => o.ReloadDebounceMilliseconds = 50));
        var logged = server.Logs.Entries.Count;

        // A copy tool that holds the file exclusively, writes it in pieces and lets go only after the reload has tried
        // to read it: the reload must wait for the writer rather than give up.
        using (var writer = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            var half = next.Length / 2;
            writer.Write(next, 0, half);
            writer.Flush();
            writer.Write(next, half, next.Length - half);
            writer.Flush();
            await Wait.UntilAsync(() => server.Logs.Entries.Skip(logged).Any(e => e.Message.Contains(path)),
                "the reload to find the file held");
        }

        await Wait.UntilAsync(() => server.Model("linear").Current!.Generation >= 2, "the reload after the writer let go");
        Approx.AssertClose(after, await InferAsync(server, row));
    }

    [NoCudaFact]
    public async Task Cuda_UnavailableWithFallback_ServesOnCpuWithWarning()
    {
        var path = OnnxTestModels.Linear(_dir.Combine("linear.onnx"));
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModel("linear", path, o =>
        {
            o.WatchForChanges = false;
            o.ExecutionProvider = OnnxExecutionProvider.Cuda;
        }));
        var (_, metadata) = await server.GetAsync("/v2/models/linear");
        Assert.Equal("CPUExecutionProvider", metadata!["parameters"]!["execution_provider"]!.GetValue<string>());
        Assert.Equal("CUDAExecutionProvider", metadata["parameters"]!["requested_execution_provider"]!.GetValue<string>());
        Assert.Contains(server.Logs.Entries, e => e.Level == LogLevel.Warning && e.Message.Contains("asked for CUDA") && e.Message.Contains("serving it on the CPU"));
        Approx.AssertClose(OnnxTestModels.Reference(path, [1, 2, 3, 4], [1, 4]), await InferAsync(server, [1, 2, 3, 4]));
    }

    [NoCudaFact]
    public async Task Cuda_UnavailableWithoutFallback_FailsTheStart()
    {
        var path = OnnxTestModels.Linear(_dir.Combine("linear.onnx"));
        await using var app = InferenceTestServer.Build(b => b.AddModel("linear", path, o =>
        {
            o.ExecutionProvider = OnnxExecutionProvider.Cuda;
            o.AllowCpuFallback = false;
        }), null, new LogCollector());
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => app.StartAsync());
        Assert.Contains("'linear'", error.Message);
        Assert.Contains("AllowCpuFallback = false", error.Message);
        // The error says how to fix it: the GPU package when this build has none, else the CUDA install.
        var gpuPackage = OrtEnv.Instance().GetAvailableProviders().Contains("CUDAExecutionProvider");
        Assert.Contains(gpuPackage ? "CUDA 12 and cuDNN 9" : "-p:OnnxRuntimeBackend=gpu", error.Message);
    }

    [CudaFact]
    public async Task Cuda_Available_ServesOnCudaAndReportsIt()
    {
        var path = OnnxTestModels.Linear(_dir.Combine("linear.onnx"));
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModel("linear", path, o =>
        {
            o.WatchForChanges = false;
            o.ExecutionProvider = OnnxExecutionProvider.Cuda;
            o.AllowCpuFallback = false;
        }));
        var (_, metadata) = await server.GetAsync("/v2/models/linear");
        Assert.Equal("CUDAExecutionProvider", metadata!["parameters"]!["execution_provider"]!.GetValue<string>());
        Approx.AssertClose(OnnxTestModels.Reference(path, [1, 2, 3, 4], [1, 4]), await InferAsync(server, [1, 2, 3, 4]));
    }

    [DllImport("libc", SetLastError = true)]
    private static extern int mkfifo(string path, uint mode);

    [Fact]
    public async Task Ready_WhileAModelLoads_Is400ForTheServerAndTheModel_Then200()
    {
        var onnx = await File.ReadAllBytesAsync(OnnxTestModels.Linear(_dir.Combine("linear.onnx")));
        // A named pipe as the model file: the load reads it until the test has written the model and closed the pipe.
        var pipe = _dir.Combine("arriving.onnx");
        Assert.True(mkfifo(pipe, 0b110_000_000) == 0, $"mkfifo failed: errno {Marshal.GetLastPInvokeError()}");
        // The web server starts before the models load, as in a host whose hosted services start in that order.
        using var host = new HostBuilder()
            .ConfigureWebHost(web => web.UseTestServer().Configure(app => app.UseRouting().UseEndpoints(e => e.MapOpenInference())))
            .ConfigureServices(services => services.AddRouting().AddOnnxInference().AddModel("linear", pipe, o => o.WatchForChanges = false))
            .Build();
        var starting = Task.Run(() => host.StartAsync());
        // Opening the pipe for writing returns once the load has opened it for reading: the server is up, the model loading.
        var writer = await Task.Run(() => new FileStream(pipe, FileMode.Open, FileAccess.Write)).WaitAsync(Wait.DefaultTimeout);
        HttpResponseMessage serverWhileLoading, modelWhileLoading;
        await using (writer)
        {
            var client = host.GetTestClient();
            serverWhileLoading = await client.GetAsync("/v2/health/ready");
            modelWhileLoading = await client.GetAsync("/v2/models/linear/ready");
            await writer.WriteAsync(onnx);
        }
        await starting.WaitAsync(Wait.DefaultTimeout);
        var serverLoaded = await host.GetTestClient().GetAsync("/v2/health/ready");
        var modelLoaded = await host.GetTestClient().GetAsync("/v2/models/linear/ready");
        await host.StopAsync();

        Assert.Equal(HttpStatusCode.BadRequest, serverWhileLoading.StatusCode);
        Assert.Equal("""{"live":false,"ready":false}""", await serverWhileLoading.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.BadRequest, modelWhileLoading.StatusCode);
        Assert.Equal("""{"name":"linear","ready":false}""", await modelWhileLoading.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.OK, serverLoaded.StatusCode);
        Assert.Equal(HttpStatusCode.OK, modelLoaded.StatusCode);
        Assert.Equal("""{"name":"linear","ready":true}""", await modelLoaded.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Start_InvalidOptions_FailsNamingOptionAndValue()
    {
        var path = OnnxTestModels.Linear(_dir.Combine("linear.onnx"));
        await using var app = InferenceTestServer.Build(b => b.AddModel("linear", path, o => { o.MaxBatchSize = 0; o.MaxQueueDelayMicroseconds = -1; }),
            null, new LogCollector());
        var error = await Assert.ThrowsAsync<OptionsValidationException>(() => app.StartAsync());
        Assert.Contains("model 'linear': MaxBatchSize = 0 is not allowed", error.Message);
        Assert.Contains("MaxQueueDelayMicroseconds = -1", error.Message);
    }

    [Fact]
    public async Task Start_MissingFile_FailsNamingModelAndPath()
    {
        var path = _dir.Combine("absent.onnx");
        await using var app = InferenceTestServer.Build(b => b.AddModel("linear", path), null, new LogCollector());
        var error = await Assert.ThrowsAsync<FileNotFoundException>(() => app.StartAsync());
        Assert.Contains("'linear'", error.Message);
        Assert.Contains("absent.onnx", error.Message);
    }

    [Theory]
    [InlineData("")]
    [InlineData("../model")]
    [InlineData(".hidden")]
    [InlineData("a/b")]
    public void AddModel_NameNotAllowed_Throws(string name)
    {
        var builder = WebApplication.CreateSlimBuilder();
        var error = Assert.Throws<ArgumentException>(() => builder.Services.AddOnnxInference().AddModel(name, "model.onnx"));
        Assert.Contains("is not allowed", error.Message);
    }

    [Fact]
    public void MapOpenInference_WithoutAddOnnxInference_ThrowsFriendlyError()
    {
        var builder = WebApplication.CreateSlimBuilder();
        var app = builder.Build();
        var error = Assert.Throws<InvalidOperationException>(() => app.MapOpenInference());
        Assert.Equal("Unable to find the required services. Add them by calling 'IServiceCollection.AddOnnxInference()' in the application startup code.", error.Message);
    }
}
