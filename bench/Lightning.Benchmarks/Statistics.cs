namespace Lightning.Benchmarks;

/// <summary>The benchmarks' summary statistic.</summary>
internal static class Statistics
{
    /// <summary>The median (the mean of the middle two for an even count).</summary>
    public static double Median(IEnumerable<double> values)
    {
        var sorted = values.Order().ToArray();
        if (sorted.Length == 0) throw new ArgumentException("The median of no values is undefined.", nameof(values));
        return sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
    }
}
