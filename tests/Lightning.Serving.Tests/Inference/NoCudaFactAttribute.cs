namespace Lightning.Serving.Tests.Inference;

/// <summary>A fact about the CUDA-unavailable paths; skipped where CUDA can be created, since they cannot happen there.</summary>
public sealed class NoCudaFactAttribute : FactAttribute
{
    public NoCudaFactAttribute()
    {
        if (OnnxCuda.Available) Skip = "ONNX Runtime creates CUDA here, so the fallback paths cannot be reached.";
    }
}
