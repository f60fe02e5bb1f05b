using Xunit;

namespace Lightning.Testing;

/// <summary>A theory about machines without CUDA: reported as skipped, with the reason, where TorchSharp finds a CUDA device.</summary>
public sealed class NoCudaTheoryAttribute : TheoryAttribute
{
    public NoCudaTheoryAttribute() => Skip = Requires.NoCuda;
}
