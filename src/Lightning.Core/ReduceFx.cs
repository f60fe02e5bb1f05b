namespace Lightning;

/// <summary>How per-step values of a metric become its epoch value (Lightning's <c>reduce_fx</c>).</summary>
public enum ReduceFx
{
    /// <summary>The mean, weighted by batch size.</summary>
    Mean,
    /// <summary>The sum.</summary>
    Sum,
    /// <summary>The smallest value.</summary>
    Min,
    /// <summary>The largest value.</summary>
    Max,
}
