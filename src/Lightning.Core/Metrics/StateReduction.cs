namespace Lightning.Metrics;

/// <summary>How a metric state combines across updates and across "ddp" ranks (torchmetrics' <c>dist_reduce_fx</c>).</summary>
public enum StateReduction
{
    /// <summary>Added up: counts and sums (a rank's updates add to it; ranks sum-reduce).</summary>
    Sum,
    /// <summary>Concatenated along the first dimension: collected samples (ranks gather, each its own length).</summary>
    Cat,
}
