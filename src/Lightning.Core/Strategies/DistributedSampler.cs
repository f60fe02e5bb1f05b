using System.Collections;
using Lightning.Data;

namespace Lightning.Strategies;

/// <summary>
/// PyTorch's <c>DistributedSampler</c>: this rank's share of the sample indices. Training (<paramref name="pad"/>) pads
/// the order by repeating its start so every rank gets the same count, and shuffles per epoch with the seed (the same
/// permutation on every rank, so shards are disjoint); evaluation takes every index once (Lightning's unrepeated sampler).
/// </summary>
internal sealed class DistributedSampler(long count, int rank, int worldSize, bool shuffle, bool pad, long seed) : IEnumerable<long>
{
    private readonly EpochShuffler? _shuffler = shuffle ? new EpochShuffler(count, seed) : null;

    public int Epoch { get; set; }

    /// <summary>Indices this rank yields per epoch.</summary>
    public long Length => pad ? (count + worldSize - 1) / worldSize : (count - rank + worldSize - 1) / worldSize;

    public IEnumerator<long> GetEnumerator()
    {
        IEnumerable<long> order;
        if (_shuffler is not null)
        {
            _shuffler.Epoch = Epoch;
            order = _shuffler;
        }
        else
        {
            order = LongRange(count);
        }
        var all = order.ToArray();
        var total = pad ? Length * worldSize : count;
        for (long i = rank; i < total; i += worldSize) yield return all[i % count];
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    private static IEnumerable<long> LongRange(long count)
    {
        for (long i = 0; i < count; i++) yield return i;
    }
}
