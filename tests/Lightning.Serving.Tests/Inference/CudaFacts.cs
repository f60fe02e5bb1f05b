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
        using var model = LoadedModel.Load("probe", File.ReadAllBytes(TestModels.Linear(dir.Combine("probe.onnx"))), options, NullLogger.Instance, 1);
        return model.ExecutionProvider == LoadedModel.CudaProvider;
    });

    public static bool Available => s_available.Value;
}

/// <summary>A fact that runs only where CUDA can be created (like PL's <c>RunIf(min_cuda_gpus=1)</c>).</summary>
public sealed class CudaFactAttribute : FactAttribute
{
    public CudaFactAttribute()
    {
        if (!OnnxCuda.Available) Skip = "ONNX Runtime cannot create CUDA here (CPU build, or no CUDA 12/cuDNN 9/device).";
    }
}

/// <summary>A fact about the CUDA-unavailable paths; skipped where CUDA can be created, since they cannot happen there.</summary>
public sealed class NoCudaFactAttribute : FactAttribute
{
    public NoCudaFactAttribute()
    {
        if (OnnxCuda.Available) Skip = "ONNX Runtime creates CUDA here, so the fallback paths cannot be reached.";
    }
}
