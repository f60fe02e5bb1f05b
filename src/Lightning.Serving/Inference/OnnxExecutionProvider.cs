namespace Lightning.Serving;

/// <summary>The execution provider a served ONNX model asks for.</summary>
public enum OnnxExecutionProvider
{
    /// <summary>ONNX Runtime's CPU provider.</summary>
    Cpu,

    /// <summary>
    /// ONNX Runtime's CUDA provider: needs the Microsoft.ML.OnnxRuntime.Gpu natives (build with <c>-p:OnnxRuntimeBackend=gpu</c>),
    /// CUDA 12 and cuDNN 9; see <see cref="OnnxModelOptions.AllowCpuFallback"/>.
    /// </summary>
    Cuda,
}
