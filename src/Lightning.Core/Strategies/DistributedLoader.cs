using System.Collections;
using System.Reflection;
using TorchSharp.Modules;

namespace Lightning.Strategies;

/// <summary>
/// Gives each rank its share of a data loader (Lightning's sampler injection). A TorchSharp <c>DataLoader</c> is rebuilt
/// over the same dataset with a <see cref="DistributedSampler"/>; any other enumerable is sharded by batch: rank r takes
/// every world-size-th batch, and in training only whole rounds, so every rank runs the same number of steps.
/// </summary>
internal static class DistributedLoader
{
    public static IEnumerable<TBatch> Shard<TBatch>(IEnumerable<TBatch> loader, Strategy ddp, bool training, long seed)
    {
        if (ddp.WorldSize == 1 || loader is IDistributedLoader) return loader;
        for (var type = loader.GetType(); type is not null; type = type.BaseType)
            if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(DataLoader<,>))
                return RebuildDataLoader(loader, type, ddp, training, seed);
        return new BatchShards<TBatch>(loader, ddp.GlobalRank, ddp.WorldSize, training);
    }

    private static IEnumerable<TBatch> RebuildDataLoader<TBatch>(IEnumerable<TBatch> loader, Type type, Strategy ddp, bool training, long seed)
    {
        object? Get(string name) => type.GetProperty(name)!.GetValue(loader);
        var dataset = Get("dataset")!;
        var count = (long)dataset.GetType().GetProperty("Count")!.GetValue(dataset)!;
        var original = (IEnumerable<long>)Get("sampler")!;
        // Shuffle training data only when the loader shuffled it, as Lightning does (a sequential sampler yields 0..n-1).
        var shuffle = training && !original.SequenceEqual(Range(count));
        var sampler = new DistributedSampler(count, ddp.GlobalRank, ddp.WorldSize, shuffle, pad: training, seed);
        var batchSize = (int)Get("batch_size")!;
        var dropLast = (bool)Get("drop_last")!;
        // The rebuilt loader must not dispose the dataset: the caller's loader still owns it.
        var rebuilt = (IEnumerable<TBatch>)Activator.CreateInstance(type, BindingFlags.Public | BindingFlags.Instance, null,
            [dataset, batchSize, Get("collate_fn"), sampler, Get("Device"), Get("num_workers"), dropLast, Get("DisposeBatch"), false], null)!;
        var batches = dropLast ? sampler.Length / batchSize : (sampler.Length + batchSize - 1) / batchSize;
        return new SampledLoader<TBatch>(rebuilt, sampler, batches);
    }

    private static IEnumerable<long> Range(long count)
    {
        for (long i = 0; i < count; i++) yield return i;
    }

    private sealed class SampledLoader<TBatch>(IEnumerable<TBatch> inner, DistributedSampler sampler, long count) : IDistributedLoader, IEnumerable<TBatch>
    {
        public long? Count => count;
        public void SetEpoch(int epoch) => sampler.Epoch = epoch;
        public IEnumerator<TBatch> GetEnumerator() => inner.GetEnumerator();
        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
    }

    private sealed class BatchShards<TBatch>(IEnumerable<TBatch> inner, int rank, int worldSize, bool wholeRounds) : IDistributedLoader, IEnumerable<TBatch>
    {
        public long? Count => Loops.DataLoaderLength.Of(inner) is { } n
            ? wholeRounds ? n / worldSize : (n - rank + worldSize - 1) / worldSize
            : null;

        public void SetEpoch(int epoch) => Data.EpochShuffler.SetEpochOf(inner, epoch);

        public IEnumerator<TBatch> GetEnumerator()
        {
            var round = new List<TBatch>(worldSize);
            foreach (var batch in inner)
            {
                round.Add(batch);
                if (round.Count < worldSize) continue;
                yield return round[rank];
                round.Clear();
            }
            if (!wholeRounds && rank < round.Count) yield return round[rank];
        }

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
    }
}

