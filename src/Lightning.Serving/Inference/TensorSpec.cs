using Microsoft.ML.OnnxRuntime.Tensors;

namespace Lightning.Serving;

/// <summary>A tensor of a graph input or output as the model declares it: name, element type and dims (-1 = symbolic).</summary>
internal sealed record TensorSpec(string Name, TensorElementType ElementType, long[] Shape)
{
    public string Datatype => TensorTypes.ToV2(ElementType);
}
