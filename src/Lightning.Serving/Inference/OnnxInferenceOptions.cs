using Prometheus;

namespace Lightning.Serving;

/// <summary>Server-wide settings of the Open Inference Protocol endpoints mapped by <c>MapOpenInference</c>.</summary>
public sealed class OnnxInferenceOptions
{
    /// <summary>The largest infer request body in bytes (default 30,000,000, Kestrel's default); a larger one gets 413.</summary>
    public long MaxRequestBodySize { get; set; } = 30_000_000;

    /// <summary>
    /// The most infer requests reading and parsing their bodies at once (default 4 per processor, at least 8); more
    /// wait their turn. With <see cref="MaxRequestBodySize"/> it bounds the memory that request bodies can take, since
    /// one body takes a small multiple of its size while it is parsed.
    /// </summary>
    public int MaxConcurrentParsing { get; set; } = Math.Max(8, 4 * Environment.ProcessorCount);

    /// <summary>The <c>Retry-After</c> seconds sent with a 503 for a full queue or a stopping server (default 1; at least 1).</summary>
    public int RetryAfterSeconds { get; set; } = 1;

    /// <summary>The route of the Prometheus metrics (default <c>/metrics</c>); null maps none.</summary>
    public string? MetricsPath { get; set; } = "/metrics";

    /// <summary>The Prometheus registry the inference metrics go to; null (default) gives each host its own registry.</summary>
    public CollectorRegistry? MetricsRegistry { get; set; }

    /// <summary>The model repository folder set by <see cref="OnnxInferenceBuilder.AddModelRepository"/>; null for none.</summary>
    internal string? RepositoryPath { get; set; }

    /// <summary>Whether the repository's models load when the host starts (true) or only through the load route.</summary>
    internal bool RepositoryLoadAllOnStart { get; set; } = true;

    /// <summary>The model names added through <see cref="OnnxInferenceBuilder.AddModel"/>, in order.</summary>
    internal List<string> ModelNames { get; } = [];
}
