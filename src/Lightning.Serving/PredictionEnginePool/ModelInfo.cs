namespace Lightning.Serving;

/// <summary>What a pool is serving for one model name: which load it is, where it came from and the device in effect.</summary>
public sealed class ModelInfo
{
    internal ModelInfo(string modelName, int version, string source, DateTimeOffset loadedAt, int? gpuDeviceId, bool fallbackToCpu, string device)
    {
        ModelName = modelName;
        Version = version;
        Source = source;
        LoadedAt = loadedAt;
        GpuDeviceId = gpuDeviceId;
        FallbackToCpu = fallbackToCpu;
        Device = device;
    }

    /// <summary>The model name; <c>""</c> for the default model.</summary>
    public string ModelName { get; }

    /// <summary>1 for the model loaded at start, then one more for every successful reload.</summary>
    public int Version { get; }

    /// <summary>Where the model came from: the file path, the URI, or the custom loader's type name.</summary>
    public string Source { get; }

    /// <summary>When this version started serving.</summary>
    public DateTimeOffset LoadedAt { get; }

    /// <summary>The CUDA device the <c>MLContext</c> asked for when this version loaded; null for the CPU.</summary>
    public int? GpuDeviceId { get; }

    /// <summary>Whether the <c>MLContext</c> allowed falling back to the CPU when this version loaded.</summary>
    public bool FallbackToCpu { get; }

    /// <summary>
    /// The device ONNX-backed transforms of this version score on: <c>"cpu"</c>, or <c>"cuda:N"</c> when CUDA device N was
    /// asked for and ONNX Runtime's CUDA provider can be created in this process. Other transforms always run on the CPU.
    /// </summary>
    public string Device { get; }

    /// <inheritdoc />
    public override string ToString() =>
        $"model '{ModelName}' v{Version} from {Source}, loaded {LoadedAt:O}, device {Device}";
}
