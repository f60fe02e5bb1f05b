using Microsoft.Extensions.Options;

namespace Lightning.Serving;

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
        if (options.MaxConcurrentRuns is < 1 or > 1024)
            failures.Add($"{model}: {nameof(OnnxModelOptions.MaxConcurrentRuns)} = {options.MaxConcurrentRuns} is not allowed; it must be 1 to 1,024.");
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
