using static TorchSharp.torch;

namespace Lightning.Strategies;

/// <summary>
/// Moves a batch to the run's device, casts its floating tensors to the run's dtype and lays them out in the run's memory
/// format (Lightning's <c>transfer_batch_to_device</c> plus precision input conversion).
/// </summary>
internal static class BatchTransfer
{
    public static TBatch Apply<TBatch>(TBatch batch, Device device, ScalarType? dtype, string memoryFormat)
    {
        Tensor Convert(Tensor t)
        {
            var moved = t.device == device ? t : t.to(device);
            var cast = dtype is { } d && moved.is_floating_point() && moved.dtype != d ? moved.to(d) : moved;
            return MemoryLayout.Apply(cast, memoryFormat);
        }

        object? converted = batch switch
        {
            Tensor t => Convert(t),
            Tensor[] array => array.Select(Convert).ToArray(),
            IList<Tensor> list => list.Select(Convert).ToList(),
            IDictionary<string, Tensor> dictionary => dictionary.ToDictionary(p => p.Key, p => Convert(p.Value)),
            _ => null,
        };
        return converted is TBatch result ? result : batch;
    }
}
