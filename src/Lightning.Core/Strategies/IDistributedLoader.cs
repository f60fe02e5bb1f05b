namespace Lightning.Strategies;

/// <summary>A loader already sharded for this rank: its length per rank and its epoch for shuffling.</summary>
internal interface IDistributedLoader
{
    long? Count { get; }
    void SetEpoch(int epoch);
}
