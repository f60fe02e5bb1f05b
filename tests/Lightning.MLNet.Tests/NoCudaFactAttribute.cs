using TorchSharp;

namespace Lightning.MLNet.Tests;

/// <summary>A fact about training where CUDA is missing; skipped where TorchSharp finds a CUDA device.</summary>
public sealed class NoCudaFactAttribute : FactAttribute
{
    public NoCudaFactAttribute()
    {
        if (torch.cuda.is_available()) Skip = "TorchSharp finds a CUDA device here, so the no-CUDA paths cannot be reached.";
    }
}
