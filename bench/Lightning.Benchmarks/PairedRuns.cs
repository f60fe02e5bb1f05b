namespace Lightning.Benchmarks;

/// <summary>The benchmarks' A/B procedure: warm-up runs of each side, then paired runs; the median of B/A over the pairs.</summary>
internal static class PairedRuns
{
    /// <summary>
    /// Runs <paramref name="a"/> and <paramref name="b"/> <paramref name="warmups"/> times each as run 0, then as runs 1 to
    /// <paramref name="pairs"/>, calling <paramref name="report"/> with each pair's results. With <paramref name="alternate"/>,
    /// every second pair runs B first, so neither side always inherits the other's warm caches or leftover garbage.
    /// </summary>
    public static double MedianRatio(int pairs, Func<int, double> a, Func<int, double> b, Action<int, double, double> report,
        bool alternate = false, int warmups = 1)
    {
        for (int warmup = 0; warmup < warmups; warmup++)
        {
            a(0);
            b(0);
        }
        var ratios = new List<double>();
        for (int run = 1; run <= pairs; run++)
        {
            double first, second;
            if (alternate && run % 2 == 0)
            {
                second = b(run);
                first = a(run);
            }
            else
            {
                first = a(run);
                second = b(run);
            }
            ratios.Add(second / first);
            report(run, first, second);
        }
        ratios.Sort();
        return ratios[ratios.Count / 2];
    }
}
