namespace Lightning.Serving;

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
    /// Waits are timed in whole milliseconds, rounded up.
    /// </summary>
    public long MaxQueueDelayMicroseconds { get; set; }

    /// <summary>
    /// Whether requests are merged along dim 0 (default null: only when every input and output has a symbolic dim 0
    /// with one shared name, such as the <c>batch</c> of Lightning's exporter, since ONNX says one name is one size and
    /// so the rows are independent). True merges whenever dim 0 of every input and output is variable (the model's
    /// rows must then be independent; it fails the load otherwise); false never merges.
    /// </summary>
    public bool? DynamicBatching { get; set; }

    /// <summary>
    /// The most ONNX Runtime runs of this model at once (default 1; 1 to 1,024), as Triton's instance count: a request
    /// that finds fewer runs in progress and nothing queued runs at once on its own thread; the others queue for the
    /// batcher, which runs one batch at a time. More than 1 lets small models use several cores without the queue's
    /// thread hops; ONNX Runtime allows concurrent runs of one session.
    /// </summary>
    public int MaxConcurrentRuns { get; set; } = 1;

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

    /// <summary>
    /// Reload the model when its file is changed, created or renamed into place (default true). A file that another
    /// process still holds is read once it lets go (waiting up to 5 seconds). A failed load keeps the old model.
    /// </summary>
    public bool WatchForChanges { get; set; } = true;

    /// <summary>How long, in milliseconds, the file must stay quiet before a reload (default 200; 0 to 60,000).</summary>
    public int ReloadDebounceMilliseconds { get; set; } = 200;
}
