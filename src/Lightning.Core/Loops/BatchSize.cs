using System.Collections;
using static TorchSharp.torch;

namespace Lightning.Loops;

/// <summary>The size of a batch for weighting epoch means: the first dimension of its first tensor, as Lightning extracts it.</summary>
internal static class BatchSize
{
    public static int Of(object? batch) => batch switch
    {
        Tensor t when t.dim() > 0 => (int)t.shape[0],
        IDictionary dictionary => dictionary.Values.Cast<object?>().Select(Of).FirstOrDefault(n => n > 0, 1),
        IEnumerable items and not string => items.Cast<object?>().Select(Of).FirstOrDefault(n => n > 0, 1),
        _ => 1,
    };
}
