using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.ML;

namespace Lightning.Serving;

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

        var (device, problem) = ExecutionProviderChoice.Resolve(context);
        var poolLogger = loggerFactory.CreateLogger("Lightning.Serving.PredictionEnginePool");
        if (problem is not null && context.GpuDeviceId is int gpu)
        {
            if (context.FallbackToCpu) PredictionEnginePoolLog.GpuUnavailable(poolLogger, gpu, problem);
            else PredictionEnginePoolLog.GpuUnavailableNoFallback(poolLogger, gpu, problem);
        }
        PredictionEnginePoolLog.DeviceChoice(poolLogger, device, context.GpuDeviceId, context.FallbackToCpu);
    }
}
