using Microsoft.Extensions.Options;

namespace Lightning.Serving;

internal sealed class OnnxInferenceOptionsValidator : IValidateOptions<OnnxInferenceOptions>
{
    public ValidateOptionsResult Validate(string? name, OnnxInferenceOptions options)
    {
        var failures = new List<string>();
        if (options.MaxRequestBodySize < 1)
            failures.Add($"{nameof(OnnxInferenceOptions.MaxRequestBodySize)} = {options.MaxRequestBodySize} is not allowed; it must be at least 1 byte.");
        if (options.MaxConcurrentParsing < 1)
            failures.Add($"{nameof(OnnxInferenceOptions.MaxConcurrentParsing)} = {options.MaxConcurrentParsing} is not allowed; it must be at least 1.");
        if (options.RetryAfterSeconds < 1)
            failures.Add($"{nameof(OnnxInferenceOptions.RetryAfterSeconds)} = {options.RetryAfterSeconds} is not allowed; it must be at least 1.");
        if (options.MetricsPath is { } path && !path.StartsWith('/'))
            failures.Add($"{nameof(OnnxInferenceOptions.MetricsPath)} = '{path}' is not allowed; it must start with '/' (or be null for none).");
        var duplicate = options.ModelNames.GroupBy(n => n, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
            failures.Add($"Model '{duplicate.Key}' is added {duplicate.Count()} times; each name serves one model.");
        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
