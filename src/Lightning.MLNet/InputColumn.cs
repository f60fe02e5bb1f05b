using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Lightning.MLNet;

/// <summary>
/// One column the module reads, in forward-argument order: a known-size vector of Single (float32 [batch, Width]) or of
/// Int64 (int64 [batch, Width], e.g. token ids).
/// </summary>
internal sealed record InputColumn(string Name, int Width, ScalarType ElementType)
{
    /// <summary>What the trainers and transforms accept as an input column, in ML.NET's type names.</summary>
    public const string Allowed = "Vector<Single> or Vector<Int64> of known size";

    /// <summary>The column's ML.NET type.</summary>
    public VectorDataViewType Type => new(ElementType == ScalarType.Int64 ? NumberDataViewType.Int64 : NumberDataViewType.Single, Width);

    /// <summary>A zero row of the column, the shape the export traces the module with.</summary>
    public Tensor Sample(bool batched) => batched ? zeros([1, Width], ElementType) : zeros([Width], ElementType);
}
