using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using static TorchSharp.torch;

namespace Lightning.MLNet;

/// <summary>
/// One column the module reads, in forward-argument order:
/// <list type="bullet">
/// <item>a known-size vector of Single (float32 [batch, Width]) or of Int64 (int64 [batch, Width], e.g. token ids);</item>
/// <item>a known-size vector of keys of <see cref="KeyCount"/> values: int64 [batch, Width] of the zero-based ids
/// 0..KeyCount-1 (ML.NET's key value k, 1-based with 0 for missing, reaches the module as k - 1);</item>
/// <item>a variable-length vector of Single or Int64 (<see cref="Variable"/>): two forward arguments, the values padded
/// with zeros to the batch's longest row (or to <see cref="MaxLength"/>) [batch, L] and the mask, int64 [batch, L],
/// 1 for a real value and 0 for padding.</item>
/// <item>an image of known size (<see cref="ImageHeight"/> × <see cref="ImageWidth"/>, <c>MLImage</c>): float32
/// [batch, 3, H, W], red, green and blue scaled to [0, 1], read through ML.NET's <c>ExtractPixels</c>.</item>
/// </list>
/// </summary>
internal sealed record InputColumn(string Name, int Width, ScalarType ElementType, ulong KeyCount = 0, bool Variable = false, int? MaxLength = null,
    int ImageHeight = 0, int ImageWidth = 0)
{
    /// <summary>What the trainers and transforms accept as an input column, in ML.NET's type names.</summary>
    public const string Allowed = "Vector<Single>, Vector<Int64> or Vector<Key<UInt32>> of known size, a variable-length Vector<Single> or Vector<Int64>, or an Image of known size";

    /// <summary>An image column of <paramref name="height"/> × <paramref name="width"/> pixels.</summary>
    public static InputColumn Image(string name, int height, int width) =>
        new(name, checked(3 * height * width), ScalarType.Float32, ImageHeight: height, ImageWidth: width);

    /// <summary>Whether the column holds images.</summary>
    public bool IsImage => ImageHeight > 0;

    /// <summary>The shape of one row's tensor: [3, H, W] for an image, else [Width].</summary>
    public long[] RowShape => IsImage ? [3, ImageHeight, ImageWidth] : [Width];

    /// <summary>The column the readers read: an image's pixels (<c>ExtractPixels</c>), else the column itself.</summary>
    public string ReadName => IsImage ? $"{Name}.Pixels" : Name;

    /// <summary>Whether the column holds keys.</summary>
    public bool IsKey => KeyCount > 0;

    /// <summary>The forward arguments the column gives: its values, and for a variable-length column its mask.</summary>
    public int ArgumentCount => Variable ? 2 : 1;

    /// <summary>
    /// The column the per-row graph (OnnxTransformer, the saved model) reads: the column itself, or for keys its
    /// indicator vector <c>Vector&lt;Single, Width × KeyCount&gt;</c> (ML.NET's <c>MapKeyToVector</c>): OnnxTransformer
    /// takes no key columns, and ML.NET converts a key to no number type but its own raw type, a key again.
    /// </summary>
    public string RowName => IsKey ? $"{Name}.Indicators" : ReadName;

    /// <summary>The batched graph's inputs for this column: the values, and for a variable-length column the mask.</summary>
    public string[] BatchedNames => Variable ? [Name, $"{Name}.Mask"] : [Name];

    /// <summary>The column's ML.NET type (a vector of size 0: variable length).</summary>
    public DataViewType Type => IsImage ? new ImageDataViewType(ImageHeight, ImageWidth)
        : IsKey ? new VectorDataViewType(new KeyDataViewType(typeof(uint), KeyCount), Width)
        : new VectorDataViewType(ElementType == ScalarType.Int64 ? NumberDataViewType.Int64 : NumberDataViewType.Single, Variable ? 0 : Width);

    /// <summary>
    /// Rows of id 0 in each slot that the export traces the module with: the batched graph's inputs ([1, F], a variable
    /// column's values and mask [1, L]) or the per-row graph's input ([F], a key column's indicators, a variable column's [1, L]).
    /// </summary>
    public Tensor[] Samples(bool batched)
    {
        int length = Variable ? MaxLength ?? 2 : Width;
        if (batched)
            return Variable ? [zeros([1, length], ElementType), ones([1, length], ScalarType.Int64)] : [zeros([1, .. RowShape], ElementType)];
        // A variable-length row as [1, L]: OnnxTransformer sizes an unknown axis after a leading one.
        if (Variable) return [zeros([1, length], ElementType)];
        if (!IsKey) return [zeros([length], ElementType)];
        using var first = zeros([Width, (long)KeyCount]).index_fill_(1, tensor(new long[] { 0 }), 1);
        return [first.reshape(-1)];
    }
}
