using Lightning.Testing;
using Microsoft.Extensions.Logging.Abstractions;

namespace Lightning.Serving.Tests.Inference;

/// <summary>Whether ONNX Runtime can serve on CUDA here: the GPU build (-p:OnnxRuntimeBackend=gpu), CUDA 12, cuDNN 9 and a device.</summary>
internal static class OnnxCuda
{
    private static readonly Lazy<bool> s_available = new(() =>
    {
        using var dir = new TempDirectory();
        var options = new OnnxModelOptions { ExecutionProvider = OnnxExecutionProvider.Cuda, AllowCpuFallback = true };
        using var model = LoadedModel.Load("probe", File.ReadAllBytes(OnnxTestModels.Linear(dir.Combine("probe.onnx"))), options, NullLogger.Instance, 1);
        return model.ExecutionProvider == LoadedModel.CudaProvider;
    });

    public static bool Available => s_available.Value;
}
