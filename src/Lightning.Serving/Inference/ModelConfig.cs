using System.Text.Json;

namespace Lightning.Serving;

/// <summary>
/// A repository model's <c>config.json</c>, Triton's settings by Triton's names: <c>max_batch_size</c>,
/// <c>max_queue_delay_microseconds</c>, <c>max_queue_size</c>, <c>max_concurrent_runs</c>, <c>dynamic_batching</c> (true/false; absent: by the
/// model's dim names), <c>execution_provider</c> ("cpu" or "cuda"), <c>intra_op_num_threads</c>, <c>watch_for_changes</c>
/// and <c>version_policy</c> (<c>{"latest": {"num_versions": n}}</c>, <c>{"all": {}}</c> or <c>{"specific": {"versions": [..]}}</c>).
/// </summary>
internal sealed record ModelConfig(OnnxModelOptions Options, VersionPolicy Policy)
{
    private static readonly string[] Keys =
        ["max_batch_size", "max_queue_delay_microseconds", "max_queue_size", "max_concurrent_runs", "dynamic_batching", "execution_provider", "intra_op_num_threads", "watch_for_changes", "version_policy"];

    public static ModelConfig Default => new(new OnnxModelOptions(), VersionPolicy.Latest(1));

    /// <summary>The options of one version, at <paramref name="path"/>.</summary>
    public OnnxModelOptions ToOptions(string path) => new()
    {
        Path = path,
        MaxBatchSize = Options.MaxBatchSize,
        MaxQueueDelayMicroseconds = Options.MaxQueueDelayMicroseconds,
        MaxQueueSize = Options.MaxQueueSize,
        MaxConcurrentRuns = Options.MaxConcurrentRuns,
        DynamicBatching = Options.DynamicBatching,
        ExecutionProvider = Options.ExecutionProvider,
        IntraOpNumThreads = Options.IntraOpNumThreads,
        WatchForChanges = Options.WatchForChanges,
    };

    /// <exception cref="FormatException">A key, value or policy that is not allowed; the message names it and what is allowed.</exception>
    public static ModelConfig Parse(byte[] json, string where)
    {
        using var document = JsonDocument.Parse(json, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object) throw new FormatException($"{where} must hold a JSON object.");
        var options = new OnnxModelOptions();
        var policy = VersionPolicy.Latest(1);
        foreach (var p in root.EnumerateObject())
        {
            switch (p.Name)
            {
                case "max_batch_size": options.MaxBatchSize = Int(p); break;
                case "max_queue_delay_microseconds": options.MaxQueueDelayMicroseconds = Long(p); break;
                case "max_queue_size": options.MaxQueueSize = Int(p); break;
                case "max_concurrent_runs": options.MaxConcurrentRuns = Int(p); break;
                case "intra_op_num_threads": options.IntraOpNumThreads = Int(p); break;
                case "dynamic_batching": options.DynamicBatching = Bool(p); break;
                case "watch_for_changes": options.WatchForChanges = Bool(p); break;
                case "execution_provider":
                    options.ExecutionProvider = p.Value.ValueKind == JsonValueKind.String && p.Value.GetString() is { } provider
                        && Enum.TryParse<OnnxExecutionProvider>(provider, ignoreCase: true, out var parsed) && Enum.IsDefined(parsed)
                        ? parsed : throw new FormatException($"execution_provider = {p.Value.GetRawText()} is not allowed; use \"cpu\" or \"cuda\".");
                    break;
                case "version_policy": policy = VersionPolicy.Parse(p.Value); break;
                default: throw new FormatException($"'{p.Name}' is not a setting; the settings are [{string.Join(", ", Keys)}].");
            }
        }
        var invalid = new OnnxModelOptionsValidator().Validate(where, new OnnxModelOptions
        {
            Path = "model.onnx",
            MaxBatchSize = options.MaxBatchSize,
            MaxQueueDelayMicroseconds = options.MaxQueueDelayMicroseconds,
            MaxQueueSize = options.MaxQueueSize,
            MaxConcurrentRuns = options.MaxConcurrentRuns,
            IntraOpNumThreads = options.IntraOpNumThreads,
            ExecutionProvider = options.ExecutionProvider,
        });
        if (invalid.Failed) throw new FormatException(invalid.FailureMessage);
        return new ModelConfig(options, policy);
    }

    private static int Int(JsonProperty p) => p.Value.ValueKind == JsonValueKind.Number && p.Value.TryGetInt32(out var v) ? v
        : throw new FormatException($"{p.Name} = {p.Value.GetRawText()} is not allowed; it is an integer.");

    private static long Long(JsonProperty p) => p.Value.ValueKind == JsonValueKind.Number && p.Value.TryGetInt64(out var v) ? v
        : throw new FormatException($"{p.Name} = {p.Value.GetRawText()} is not allowed; it is an integer.");

    private static bool Bool(JsonProperty p) => p.Value.ValueKind is JsonValueKind.True or JsonValueKind.False ? p.Value.GetBoolean()
        : throw new FormatException($"{p.Name} = {p.Value.GetRawText()} is not allowed; it is true or false.");
}
