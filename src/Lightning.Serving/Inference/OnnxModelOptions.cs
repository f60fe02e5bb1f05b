using Microsoft.Extensions.Options;

namespace Lightning.Serving;

/// <summary>The execution provider a served ONNX model asks for.</summary>
public enum OnnxExecutionProvider
{
    /// <summary>ONNX Runtime's CPU provider.</summary>
    Cpu,

    /// <summary>
    /// ONNX Runtime's CUDA provider: needs the Microsoft.ML.OnnxRuntime.Gpu natives (build with <c>-p:OnnxRuntimeBackend=gpu</c>),
    /// CUDA 12 and cuDNN 9; see <see cref="OnnxModelOptions.AllowCpuFallback"/>.
    /// </summary>
    Cuda,
}

/// <summary>
/// How one ONNX model is served: its file, the dynamic batcher (Triton's <c>max_batch_size</c>,
/// <c>max_queue_delay_microseconds</c> and <c>max_queue_size</c>), the execution provider and hot reload. Named options,
/// one per model name given to <see cref="OnnxInferenceBuilder.AddModel"/>; validated when the host starts.
/// </summary>
public sealed class OnnxModelOptions
{
    /// <summary>The <c>.onnx</c> file. Set by <see cref="OnnxInferenceBuilder.AddModel"/>.</summary>
    public string Path { get; set; } = "";

    /// <summary>The most rows (dim 0) one ONNX Runtime run takes when requests are merged (default 32; at least 1). A request with more rows is rejected.</summary>
    public int MaxBatchSize { get; set; } = 32;

    /// <summary>
    /// How long, in microseconds, the batcher may wait for more requests after the first one of a batch (default 0: take
    /// what is queued now; at most 10,000,000). It waits only while other requests for the model are arriving (being
    /// read and parsed), so it never waits for nobody; and a request that finds the model idle runs at once, unbatched.
    /// </summary>
    public long MaxQueueDelayMicroseconds { get; set; }

    /// <summary>The most requests waiting for a run (default 1024; at least 1); a request beyond it is rejected with 503.</summary>
    public int MaxQueueSize { get; set; } = 1024;

    /// <summary>The execution provider asked for (default <see cref="OnnxExecutionProvider.Cpu"/>).</summary>
    public OnnxExecutionProvider ExecutionProvider { get; set; } = OnnxExecutionProvider.Cpu;

    /// <summary>The CUDA device for <see cref="OnnxExecutionProvider.Cuda"/> (default 0).</summary>
    public int CudaDeviceId { get; set; }

    /// <summary>When CUDA is asked for but cannot be created: true (default) serves on the CPU and logs a warning; false fails the start.</summary>
    public bool AllowCpuFallback { get; set; } = true;

    /// <summary>ONNX Runtime's intra-op threads (default 0: ONNX Runtime decides).</summary>
    public int IntraOpNumThreads { get; set; }

    /// <summary>Reload the model when its file is changed, created or renamed into place (default true). A failed load keeps the old model.</summary>
    public bool WatchForChanges { get; set; } = true;

    /// <summary>How long, in milliseconds, the file must stay quiet before a reload (default 200; 0 to 60,000).</summary>
    public int ReloadDebounceMilliseconds { get; set; } = 200;
}

internal sealed class OnnxModelOptionsValidator : IValidateOptions<OnnxModelOptions>
{
    public ValidateOptionsResult Validate(string? name, OnnxModelOptions options)
    {
        var model = $"model '{name}'";
        var failures = new List<string>();
        if (string.IsNullOrWhiteSpace(options.Path))
            failures.Add($"{model}: {nameof(OnnxModelOptions.Path)} is empty; give the .onnx file.");
        if (options.MaxBatchSize < 1)
            failures.Add($"{model}: {nameof(OnnxModelOptions.MaxBatchSize)} = {options.MaxBatchSize} is not allowed; it must be at least 1.");
        if (options.MaxQueueDelayMicroseconds is < 0 or > 10_000_000)
            failures.Add($"{model}: {nameof(OnnxModelOptions.MaxQueueDelayMicroseconds)} = {options.MaxQueueDelayMicroseconds} is not allowed; it must be 0 to 10,000,000.");
        if (options.MaxQueueSize < 1)
            failures.Add($"{model}: {nameof(OnnxModelOptions.MaxQueueSize)} = {options.MaxQueueSize} is not allowed; it must be at least 1.");
        if (options.CudaDeviceId < 0)
            failures.Add($"{model}: {nameof(OnnxModelOptions.CudaDeviceId)} = {options.CudaDeviceId} is not allowed; it must be 0 or more.");
        if (options.IntraOpNumThreads < 0)
            failures.Add($"{model}: {nameof(OnnxModelOptions.IntraOpNumThreads)} = {options.IntraOpNumThreads} is not allowed; it must be 0 (ONNX Runtime decides) or more.");
        if (options.ReloadDebounceMilliseconds is < 0 or > 60_000)
            failures.Add($"{model}: {nameof(OnnxModelOptions.ReloadDebounceMilliseconds)} = {options.ReloadDebounceMilliseconds} is not allowed; it must be 0 to 60,000.");
        if (!Enum.IsDefined(options.ExecutionProvider))
            failures.Add($"{model}: {nameof(OnnxModelOptions.ExecutionProvider)} = {(int)options.ExecutionProvider} is not allowed; use Cpu or Cuda.");
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
