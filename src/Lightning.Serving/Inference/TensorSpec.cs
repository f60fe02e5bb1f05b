using Microsoft.ML.OnnxRuntime.Tensors;

namespace Lightning.Serving;

/// <summary>
/// A tensor of a graph input or output as the model declares it: name, element type, dims (-1 = symbolic) and each
/// symbolic dim's name ("" when unnamed or fixed).
/// </summary>
internal sealed record TensorSpec(string Name, TensorElementType ElementType, long[] Shape, string[] DimNames)
{
    public string Datatype => TensorTypes.ToV2(ElementType);
}
