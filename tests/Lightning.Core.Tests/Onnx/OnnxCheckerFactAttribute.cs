namespace Lightning.Core.Tests.Onnx;

/// <summary>Runs only where python3 with the onnx package is installed; elsewhere reported as skipped with the reason.</summary>
public sealed class OnnxCheckerFactAttribute : FactAttribute
{
    public OnnxCheckerFactAttribute()
    {
        if (OnnxChecker.Unavailable is { } reason) Skip = reason;
    }
}
