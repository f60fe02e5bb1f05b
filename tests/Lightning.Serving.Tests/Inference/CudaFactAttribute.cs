namespace Lightning.Serving.Tests.Inference;

/// <summary>A fact that runs only where CUDA can be created (like PL's <c>RunIf(min_cuda_gpus=1)</c>).</summary>
public sealed class CudaFactAttribute : FactAttribute
{
    public CudaFactAttribute()
    {
        if (!OnnxCuda.Available) Skip = "ONNX Runtime cannot create CUDA here (CPU build, or no CUDA 12/cuDNN 9/device).";
    }
}
