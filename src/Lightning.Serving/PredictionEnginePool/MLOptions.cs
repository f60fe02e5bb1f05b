using Microsoft.ML;

namespace Lightning.Serving;

/// <summary>
/// The <see cref="Microsoft.ML.MLContext"/> shared by every prediction engine pool, and the device its models score on.
/// Configure it with <c>services.Configure&lt;MLOptions&gt;(...)</c> or the builder's <c>UseGpu</c>.
/// </summary>
public class MLOptions
{
    private MLContext? _context;

    /// <summary>The context models are loaded and engines created with; created on first use when not set.</summary>
    public MLContext MLContext
    {
        get => _context ??= new MLContext();
        set => _context = value ?? throw new ArgumentNullException(nameof(value), "MLOptions.MLContext cannot be set to null.");
    }

    /// <summary>
    /// The CUDA device ONNX-backed transforms (e.g. Lightning.MLNet's models) score on; null leaves the context's own
    /// setting (the CPU unless the context says otherwise). Applied to <see cref="MLContext"/> before models load.
    /// Transforms that are not ONNX-backed always run on the CPU.
    /// </summary>
    public int? GpuDeviceId { get; set; }

    /// <summary>When a GPU is asked for and cannot be used, score on the CPU instead of failing the load.</summary>
    public bool FallbackToCpu { get; set; } = true;
}
