using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.ML;
using Microsoft.ML.OnnxRuntime;

namespace Lightning.Serving;

/// <summary>Which device ONNX-backed transforms of an <see cref="MLContext"/> score on, probed once per GPU id.</summary>
internal static class DeviceSelection
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

/// <summary>Applies <see cref="MLOptions.GpuDeviceId"/>/<see cref="MLOptions.FallbackToCpu"/> to the context, logs the choice and forwards ML.NET's log.</summary>
internal sealed class PostMLContextOptionsConfiguration(ILoggerFactory loggerFactory) : IPostConfigureOptions<MLOptions>
{
    public void PostConfigure(string? name, MLOptions options)
    {
        var context = options.MLContext;
        if (options.GpuDeviceId is int id)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(id, "MLOptions.GpuDeviceId");
            context.GpuDeviceId = id;
            context.FallbackToCpu = options.FallbackToCpu;
        }

        var logger = loggerFactory.CreateLogger<MLContext>();
        // ML.NET builds its log messages only when someone listens, so subscribe only when they would be written.
        if (logger.IsEnabled(LogLevel.Trace)) context.Log += (_, e) => logger.LogTrace("{Message}", e.Message);

        var (device, problem) = DeviceSelection.Resolve(context);
        var poolLogger = loggerFactory.CreateLogger("Lightning.Serving.PredictionEnginePool");
        if (problem is not null && context.GpuDeviceId is int gpu)
        {
            if (context.FallbackToCpu) PredictionEnginePoolLog.GpuUnavailable(poolLogger, gpu, problem);
            else PredictionEnginePoolLog.GpuUnavailableNoFallback(poolLogger, gpu, problem);
        }
        PredictionEnginePoolLog.DeviceChoice(poolLogger, device, context.GpuDeviceId, context.FallbackToCpu);
    }
}
