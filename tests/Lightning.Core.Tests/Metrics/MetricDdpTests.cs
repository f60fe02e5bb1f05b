using System.Globalization;
using Lightning.Metrics;
using Lightning.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Metrics;

/// <summary>
/// Metrics under <c>mpiexec -n 2</c> (the worker's "metrics" scenario): each rank validates its own, uneven share of
/// <see cref="MetricSamples"/> (15 and 8 samples) and logs every metric; each rank's epoch value must equal what one
/// process computes over all 23 samples, AUROC's gathered scores included.
/// </summary>
public class MetricDdpTests(MetricDdpTests.Run run) : IClassFixture<MetricDdpTests.Run>
{
    public static TheoryData<string> Keys => new(MetricSamples.NewMetrics().Keys);

    [RequiresTheory(Component.Mpich)]
    [MemberData(nameof(Keys))]
    public void EveryRank_EqualsOneProcessOverAllSamples(string key)
    {
        using var samples = new MetricSamples();
        var metric = MetricSamples.NewMetrics()[key];
        foreach (var rank in new[] { 0, 1 })
            foreach (var batch in MetricSamples.RankBatches(rank)) samples.Update(key, metric, batch);
        var expected = metric.Compute().ToDouble();

        // Rank 0's share alone gives another value, so a rank that skipped the sync would fail.
        var rankZeroOnly = MetricSamples.NewMetrics()[key];
        foreach (var batch in MetricSamples.RankBatches(0)) samples.Update(key, rankZeroOnly, batch);
        Assert.NotEqual(expected, rankZeroOnly.Compute().ToDouble(), 9);

        foreach (var rank in new[] { 0, 1 }) Assert.Equal(expected, run.Values(rank)[key], 9);
    }

    [RequiresFact(Component.Mpich)]
    public void ConfusionMatrices_ComputedInAHook_SumEveryRank()
    {
        using var samples = new MetricSamples();
        var binary = new ConfusionMatrix(MetricTask.Binary);
        binary.Update(samples.BinaryLogits, samples.BinaryTarget);
        var multiclass = new ConfusionMatrix(MetricTask.Multiclass, MetricSamples.Classes);
        multiclass.Update(samples.MulticlassLogits, samples.MulticlassTarget);
        var expected = $"{string.Join(" ", binary.Compute().data<long>().ToArray())}\n{string.Join(" ", multiclass.Compute().data<long>().ToArray())}";

        foreach (var rank in new[] { 0, 1 }) Assert.Equal(expected, run.Read("confmat", rank));
    }

    public sealed class Run : IDisposable
    {
        private readonly TempDirectory _folder = new();

        public Run()
        {
            using var mpiexec = WorkerProcess.Start("metrics", _folder.Path, ranks: 2);
            if (!mpiexec.Process.WaitForExit(TimeSpan.FromMinutes(3)) || mpiexec.Process.ExitCode != 0)
                throw new InvalidOperationException($"mpiexec -n 2 (metrics) failed:\n{mpiexec.Output()}");
        }

        public string Read(string name, int rank) => File.ReadAllText(Path.Combine(_folder.Path, $"{name}.rank{rank}.txt"));

        public Dictionary<string, double> Values(int rank) => Read("metrics", rank).Split('\n')
            .Select(line => line.Split(' '))
            .ToDictionary(parts => parts[0], parts => double.Parse(parts[1], CultureInfo.InvariantCulture));

        public void Dispose() => _folder.Dispose();
    }
}
