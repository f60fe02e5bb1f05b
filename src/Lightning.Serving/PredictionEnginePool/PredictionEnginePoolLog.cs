using Microsoft.Extensions.Logging;

namespace Lightning.Serving;

/// <summary>Log events of the pool and its loaders; file and URI event ids match Microsoft.Extensions.ML's.</summary>
internal static partial class PredictionEnginePoolLog
{
    [LoggerMessage(100, LogLevel.Debug, "File reload of {FilePath} begins.", EventName = "FileReloadBegin")]
    public static partial void FileReloadBegin(ILogger logger, string filePath);

    [LoggerMessage(101, LogLevel.Debug, "File reload of {FilePath} ended.", EventName = "FileReloadEnd")]
    public static partial void FileReloadEnd(ILogger logger, string filePath);

    [LoggerMessage(102, LogLevel.Information, "Model file {FilePath} changed; reloaded it.", EventName = "FileReload")]
    public static partial void FileReload(ILogger logger, string filePath);

    [LoggerMessage(103, LogLevel.Error, "Reloading model file {FilePath} failed; the previous model keeps serving and the next change of the file is tried again.", EventName = "FileReloadError")]
    public static partial void FileReloadError(ILogger logger, string filePath, Exception exception);

    [LoggerMessage(105, LogLevel.Debug, "Model file {FilePath} is held by another process (still being written?); reading it is retried for up to 5 seconds.", EventName = "FileLocked")]
    public static partial void FileLocked(ILogger logger, string filePath);

    [LoggerMessage(100, LogLevel.Debug, "Polling {Uri} for a new model begins.", EventName = "UriReloadBegin")]
    public static partial void UriReloadBegin(ILogger logger, Uri uri);

    [LoggerMessage(101, LogLevel.Debug, "Polling {Uri} for a new model ended.", EventName = "UriReloadEnd")]
    public static partial void UriReloadEnd(ILogger logger, Uri uri);

    [LoggerMessage(102, LogLevel.Error, "Reloading the model from {Uri} failed; the previous model keeps serving and the next poll tries again.", EventName = "UriReloadError")]
    public static partial void UriReloadError(ILogger logger, Uri uri, Exception exception);

    [LoggerMessage(103, LogLevel.Error, "Loading the model from {Uri} failed.", EventName = "UriLoadError")]
    public static partial void UriLoadError(ILogger logger, Uri uri, Exception exception);

    [LoggerMessage(104, LogLevel.Information, "{Uri} sent no ETag, so it is not polled for changes; the model loaded at start keeps serving.", EventName = "UriNoETag")]
    public static partial void UriNoETag(ILogger logger, Uri uri);

    [LoggerMessage(110, LogLevel.Information, "Model '{ModelName}' version {Version} serves from {Source} on {Device}.", EventName = "ModelServing")]
    public static partial void ModelServing(ILogger logger, string modelName, int version, string source, string device);

    [LoggerMessage(111, LogLevel.Error, "Model '{ModelName}' from {Source} could not build prediction engines; version {Version} keeps serving.", EventName = "ModelSwapError")]
    public static partial void ModelSwapError(ILogger logger, string modelName, string source, int version, Exception exception);

    [LoggerMessage(120, LogLevel.Information, "ML.NET models: ONNX-backed transforms score on {Device} (GPU device {GpuDeviceId}, fallback to CPU {FallbackToCpu}); other transforms run on the CPU.", EventName = "DeviceChoice")]
    public static partial void DeviceChoice(ILogger logger, string device, int? gpuDeviceId, bool fallbackToCpu);

    [LoggerMessage(121, LogLevel.Warning, "GPU device {GpuDeviceId} was asked for, but ONNX Runtime's CUDA provider cannot be created here ({Reason}); ONNX-backed transforms fall back to the CPU.", EventName = "GpuUnavailable")]
    public static partial void GpuUnavailable(ILogger logger, int gpuDeviceId, string reason);

    [LoggerMessage(122, LogLevel.Error, "GPU device {GpuDeviceId} was asked for with FallbackToCpu off, but ONNX Runtime's CUDA provider cannot be created here ({Reason}); loading ONNX-backed models will fail.", EventName = "GpuUnavailableNoFallback")]
    public static partial void GpuUnavailableNoFallback(ILogger logger, int gpuDeviceId, string reason);
}
