using Lightning.Loops;
using static TorchSharp.torch;

namespace Lightning.Strategies;

/// <summary>Splits a batch along its first dimension into one chunk per data-parallel replica (PyTorch's <c>scatter</c>).</summary>
internal static class BatchSplit
{
    /// <summary>Up to <paramref name="parts"/> chunks of nearly equal size and each chunk's share of the rows.</summary>
    public static IReadOnlyList<(TBatch Chunk, double Share)> Split<TBatch>(TBatch batch, int parts)
    {
        var rows = BatchSize.Of(batch);
        var count = Math.Min(parts, rows);
        Tensor[] Chunks(Tensor t) => t.tensor_split(count);

        IEnumerable<object> pieces = batch switch
        {
            Tensor t => Chunks(t),
            Tensor[] array => Transpose(array.Select(Chunks).ToList(), count).Select(c => (object)c.ToArray()),
            IList<Tensor> list => Transpose(list.Select(Chunks).ToList(), count).Select(c => (object)c),
            IDictionary<string, Tensor> dictionary => Enumerable.Range(0, count).Select(i =>
                (object)dictionary.ToDictionary(p => p.Key, p => Chunks(p.Value)[i])),
            _ => throw new NotSupportedException(
                $"Strategy \"dp\" splits batches that are a Tensor, a list or array of tensors, or a dictionary of tensors; got {typeof(TBatch).Name}."),
        };
        return pieces.Select(p => ((TBatch)p, (double)BatchSize.Of(p) / rows)).ToList();
    }

    private static IEnumerable<List<Tensor>> Transpose(List<Tensor[]> perTensor, int count) =>
        Enumerable.Range(0, count).Select(i => perTensor.Select(chunks => chunks[i]).ToList());
}
