using TorchSharp.Modules;

namespace Lightning.Loops;

/// <summary>The number of batches a data loader yields, when it can be known without iterating.</summary>
internal static class DataLoaderLength
{
    public static long? Of<TBatch>(IEnumerable<TBatch> loader)
    {
        if (loader is Strategies.IDistributedLoader sharded) return sharded.Count;
        if (loader.TryGetNonEnumeratedCount(out var count)) return count;
        if (loader is IReadOnlyCollection<TBatch> collection) return collection.Count;
        // TorchSharp's DataLoader<T, TBatch> knows its length but implements no collection interface.
        for (var type = loader.GetType(); type is not null; type = type.BaseType)
            if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(DataLoader<,>))
                return (long)type.GetProperty(nameof(DataLoader.Count))!.GetValue(loader)!;
        return null;
    }
}
