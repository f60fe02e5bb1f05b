using Microsoft.ML.OnnxRuntime.Tensors;

namespace Lightning.Serving;

/// <summary>A dense row-major tensor held in a typed managed array (<c>float[]</c>, <c>long[]</c>, <c>bool[]</c>, …).</summary>
internal sealed record InferenceTensor(string Name, TensorElementType ElementType, long[] Shape, Array Data)
{
    public string Datatype => TensorTypes.ToV2(ElementType);
}
