using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using Lightning.Callbacks;
using Lightning.Strategies;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lightning.Benchmarks;

/// <summary>
/// "ddp_sharded" against "ddp" at 2 ranks on a model of 50 M parameters trained with Adam: the optimizer state each rank
/// keeps, each rank's peak resident memory, and the median step time. Each run is a fresh <c>mpiexec -n 2</c> of this
/// program (so peak memory is that run's), the two strategies alternating; the figures are medians over the pairs.
/// </summary>
internal static class ShardedBenchmark
{
    public const string Name = "sharded";

    private const int Width = 4096, Layers = 3, BatchSize = 8, Steps = 12, Warmup = 2;

    public static void Run(string[] args)
    {
        if (args is ["--rank", var strategy, var resultFile]) RunRank(strategy, resultFile);
        else RunBenchmark(args.FirstOrDefault(a => a.StartsWith("--pairs=", StringComparison.Ordinal)) is { } p ? int.Parse(p[8..], CultureInfo.InvariantCulture) : 3);
    }

    private static void RunBenchmark(int pairs)
    {
        var parameters = Layers * ((long)Width * Width + Width) + Width * 10 + 10;
        Console.WriteLine(Invariant($"MLP of {parameters / 1e6:0.0} M parameters ({Layers} x Linear({Width}, {Width}) + Linear({Width}, 10)), Adam, batch {BatchSize} per rank, 2 ranks with 1 thread each, {Steps} steps ({Warmup} warm-up); {pairs} pairs, alternating which strategy runs first"));
        var results = new Dictionary<string, List<Result>> { ["ddp"] = [], ["ddp_sharded"] = [] };
        var ratios = new List<(double State, double Rss, double Step)>();
        for (int pair = 1; pair <= pairs; pair++)
        {
            var order = pair % 2 == 1 ? new[] { "ddp", "ddp_sharded" } : ["ddp_sharded", "ddp"];
            foreach (var strategy in order)
            {
                var result = RunRanks(strategy);
                results[strategy].Add(result);
                Console.WriteLine(Invariant(
                    $"pair {pair} {strategy,-11}: optimizer state/rank {result.StateBytes / 1e6:0.0} MB; peak RSS/rank {result.PeakRss / 1e6:0} MB; median step {result.StepMs:0} ms"));
            }
            var (ddp, sharded) = (results["ddp"][^1], results["ddp_sharded"][^1]);
            ratios.Add((sharded.StateBytes / ddp.StateBytes, sharded.PeakRss / ddp.PeakRss, sharded.StepMs / ddp.StepMs));
        }
        Console.WriteLine(Invariant(
            $"sharded: state/rank = {Statistics.Median(ratios.Select(r => r.State)):0.000}; rss/rank = {Statistics.Median(ratios.Select(r => r.Rss)):0.000}; step time = {Statistics.Median(ratios.Select(r => r.Step)):0.000}"));
    }

    private sealed record Result(double StateBytes, double PeakRss, double StepMs);

    private static Result RunRanks(string strategy)
    {
        var resultFile = Path.GetTempFileName();
        try
        {
            var start = new ProcessStartInfo("mpiexec") { UseShellExecute = false };
            foreach (var argument in new[] { "-n", "2", Environment.ProcessPath! }) start.ArgumentList.Add(argument);
            if (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet") start.ArgumentList.Add(Assembly.GetEntryAssembly()!.Location);
            foreach (var argument in new[] { Name, "--rank", strategy, resultFile }) start.ArgumentList.Add(argument);
            using var ranks = Process.Start(start)!;
            ranks.WaitForExit();
            if (ranks.ExitCode != 0) throw new InvalidOperationException($"mpiexec -n 2 ({strategy}) exited with {ranks.ExitCode}.");
            // One line per rank: state bytes, peak RSS bytes, median step ms; the figures are the ranks' means.
            var lines = File.ReadAllLines(resultFile).Select(l => l.Split(' ').Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray()).ToArray();
            return new Result(lines.Average(l => l[0]), lines.Average(l => l[1]), lines.Average(l => l[2]));
        }
        finally
        {
            File.Delete(resultFile);
        }
    }

    private static void RunRank(string strategyName, string resultFile)
    {
        set_num_threads(1);
        var timer = new BatchTimer();
        var trainer = new Trainer(new TrainerOptions
        {
            Strategy = strategyName, Devices = 2, Accelerator = "cpu", MaxSteps = Steps, Loggers = [], EnableCheckpointing = false,
            EnableProgressBar = false, EnableModelSummary = false, NumSanityValSteps = 0, Callbacks = [timer],
        });
        LightningSeed.SeedEverything(0);
        var model = new Mlp();
        var batches = Enumerable.Range(0, 2 * Steps).Select(_ => randn(BatchSize, Width + 1).DetachFromDisposeScope()).ToList();
        trainer.Fit(model, batches);
        var optimizer = trainer.Optimizers[0];
        var stepping = trainer.Strategy is DdpShardedStrategy sharded ? sharded.SteppingOptimizer(optimizer) : optimizer;
        var stateBytes = OptimizerStates.Bytes((OptimizerHelper)stepping);
        var line = Invariant($"{stateBytes} {PeakResidentBytes()} {Statistics.Median(timer.Milliseconds.Skip(Warmup))}");
        // Ranks append in turn, so the lines never interleave.
        for (int rank = 0; rank < trainer.WorldSize; rank++)
        {
            if (rank == trainer.GlobalRank) File.AppendAllText(resultFile, line + "\n");
            trainer.Strategy.Barrier();
        }
    }

    /// <summary>VmHWM: the most resident memory this process has had.</summary>
    private static long PeakResidentBytes() =>
        long.Parse(File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmHWM:", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1],
            CultureInfo.InvariantCulture) * 1024;


    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    /// <summary>Column 0 of a row is its class (0-9 from a random value), the rest its features.</summary>
    private sealed class Mlp : LightningModule<Tensor>
    {
        private readonly Sequential net;

        public Mlp() : base(nameof(Mlp))
        {
            var layers = new List<nn.Module<Tensor, Tensor>>();
            for (int i = 0; i < Layers; i++)
            {
                layers.Add(nn.Linear(Width, Width));
                layers.Add(nn.ReLU());
            }
            layers.Add(nn.Linear(Width, 10));
            net = nn.Sequential(layers);
            RegisterComponents();
        }

        public override Tensor? TrainingStep(Tensor batch, int batchIdx)
        {
            var target = batch[.., 0].abs().mul(3).to(ScalarType.Int64).clamp(0, 9);
            return nn.functional.cross_entropy(net.forward(batch[.., 1..]), target);
        }

        public override OptimizerConfiguration ConfigureOptimizers() => optim.Adam(parameters(), 1e-4);
    }
}
