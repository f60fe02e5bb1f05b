using Microsoft.Extensions.Options;
using Prometheus;

namespace Lightning.Serving;

/// <summary>The Prometheus metrics of the v2 inference endpoints and the batchers.</summary>
internal sealed class InferenceMetrics
{
    public InferenceMetrics(IOptions<OnnxInferenceOptions> options)
    {
        Registry = options.Value.MetricsRegistry ?? Prometheus.Metrics.NewCustomRegistry();
        var factory = Prometheus.Metrics.WithCustomRegistry(Registry);
        Requests = factory.CreateCounter("lightning_inference_requests_total",
            "Infer requests by model and HTTP status code.", new CounterConfiguration { LabelNames = ["model", "status"] });
        Latency = factory.CreateHistogram("lightning_inference_request_duration_seconds",
            "Infer request latency in seconds, from reading the body to the answer, by model.",
            new HistogramConfiguration { LabelNames = ["model"], Buckets = Histogram.ExponentialBuckets(0.0001, 2, 18) });
        BatchSize = factory.CreateHistogram("lightning_inference_batch_size",
            "Rows (dim 0) per ONNX Runtime run after dynamic batching, by model.",
            new HistogramConfiguration { LabelNames = ["model"], Buckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024] });
        Runs = factory.CreateCounter("lightning_inference_runs_total",
            "ONNX Runtime runs by model (requests / runs = requests merged per run).", new CounterConfiguration { LabelNames = ["model"] });
        QueueDepth = factory.CreateGauge("lightning_inference_queue_depth",
            "Requests waiting in the model's batcher queue.", new GaugeConfiguration { LabelNames = ["model"] });
        Reloads = factory.CreateCounter("lightning_inference_model_reloads_total",
            "Model file reloads by model and result (success or failure).", new CounterConfiguration { LabelNames = ["model", "result"] });
    }

    public CollectorRegistry Registry { get; }

    public Counter Requests { get; }

    public Histogram Latency { get; }

    public Histogram BatchSize { get; }

    public Counter Runs { get; }

    public Gauge QueueDepth { get; }

    public Counter Reloads { get; }
}
