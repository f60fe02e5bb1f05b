using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Lightning.MLNet;

/// <summary>
/// One column the module reads, in forward-argument order: a known-size vector of Single (float32 [batch, Width]), of
/// Int64 (int64 [batch, Width], e.g. token ids) or of keys of <see cref="KeyCount"/> values (int64 [batch, Width] of the
/// zero-based ids 0..KeyCount-1: ML.NET's key value k, 1-based with 0 for missing, reaches the module as k - 1).
/// </summary>
internal sealed record InputColumn(string Name, int Width, ScalarType ElementType, ulong KeyCount = 0)
{
    /// <summary>What the trainers and transforms accept as an input column, in ML.NET's type names.</summary>
    public const string Allowed = "Vector<Single>, Vector<Int64> or Vector<Key<UInt32>> of known size";

    /// <summary>Whether the column holds keys.</summary>
    public bool IsKey => KeyCount > 0;

    /// <summary>
    /// The column the per-row graph (OnnxTransformer, the saved model) reads: the column itself, or for keys its
    /// indicator vector <c>Vector&lt;Single, Width × KeyCount&gt;</c> (ML.NET's <c>MapKeyToVector</c>): OnnxTransformer
    /// takes no key columns, and ML.NET converts a key to no number type but its own raw type, a key again.
    /// </summary>
    public string RowName => IsKey ? $"{Name}.Indicators" : Name;

    /// <summary>The column's ML.NET type.</summary>
    public VectorDataViewType Type => IsKey ? new(new KeyDataViewType(typeof(uint), KeyCount), Width)
        : new(ElementType == ScalarType.Int64 ? NumberDataViewType.Int64 : NumberDataViewType.Single, Width);

    /// <summary>A row of id 0 in each slot, the shape the export traces the module with (per row, a key column's indicators).</summary>
    public Tensor Sample(bool batched)
    {
        if (batched) return zeros([1, Width], ElementType);
        if (!IsKey) return zeros([Width], ElementType);
        using var first = zeros([Width, (long)KeyCount]).index_fill_(1, tensor(new long[] { 0 }), 1);
        return first.reshape(-1);
    }
}
