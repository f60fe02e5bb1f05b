using System.Collections.Concurrent;
using Microsoft.ML;
using Microsoft.ML.OnnxRuntime;

namespace Lightning.Serving;

/// <summary>
/// The ONNX Runtime execution provider (CUDA or the CPU) that ONNX-backed transforms of an <see cref="MLContext"/> score
/// on, with CUDA probed once per GPU id.
/// </summary>
internal static class ExecutionProviderChoice
{
    private static readonly ConcurrentDictionary<int, string?> s_cudaProblems = new();

    /// <summary>The device in effect for the context's settings, and why CUDA cannot be used (null when it can or was not asked for).</summary>
    public static (string Device, string? Problem) Resolve(MLContext context)
    {
        if (context.GpuDeviceId is not int id) return ("cpu", null);
        var problem = s_cudaProblems.GetOrAdd(id, ProbeCuda);
        if (problem is null) return ($"cuda:{id}", null);
        // Without fallback ONNX Runtime insists on the GPU and the load fails; the device asked for is still the one named.
        return (context.FallbackToCpu ? "cpu" : $"cuda:{id}", problem);
    }

    private static string? ProbeCuda(int deviceId)
    {
        try
        {
            // The same call OnnxTransformer makes for a GPU session; the CPU-only runtime throws here.
            using var options = new SessionOptions();
            options.AppendExecutionProvider_CUDA(deviceId);
            return null;
        }
        catch (Exception e)
        {
            return $"{e.GetType().Name}: {e.Message}";
        }
    }
}
