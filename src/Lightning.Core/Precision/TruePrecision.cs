using static TorchSharp.torch;

namespace Lightning.Precision;

/// <summary>Weights and floating inputs in one dtype, no autocast (Lightning's <c>Precision</c>, <c>DoublePrecision</c> and <c>HalfPrecision</c>).</summary>
internal sealed class TruePrecision(string name, ScalarType? dtype) : PrecisionPlugin
{
    public override string Name => name;
    public override ScalarType? Dtype => dtype;
}
