using System.Diagnostics;
using System.Globalization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lightning.Benchmarks;

/// <summary>Training throughput of strategy "dp" with 2 CPU replicas against one device, alternating, as a ratio from one run.</summary>
internal static class DataParallelBenchmark
{
    public const string Name = "dp";

    private const int Steps = 40, BatchSize = 256, Pairs = 5;

    public static void Run(string[] args)
    {
        Console.WriteLine($"{Environment.ProcessorCount} cores; libtorch intra-op threads: {get_num_threads()}");
        var batches = Enumerable.Range(0, Steps).Select(_ => randn(BatchSize, 512).DetachFromDisposeScope()).ToList();
        var ratio = PairedRuns.MedianRatio(Pairs, _ => Throughput(1, batches), _ => Throughput(2, batches), (run, one, two) =>
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  run {run}: 1 device {one:0} samples/s  dp x2 {two:0} samples/s  ratio {two / one:0.000}")));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"dp: 2 replicas / 1 device samples/s = {ratio:0.000}"));
    }

    private static double Throughput(int devices, IReadOnlyList<Tensor> batches)
    {
        manual_seed(0);
        var trainer = new Trainer(new TrainerOptions
        {
            MaxEpochs = 1, Accelerator = "cpu", Devices = devices, Strategy = devices > 1 ? "dp" : "auto", Loggers = [],
            EnableCheckpointing = false, EnableProgressBar = false, EnableModelSummary = false, DefaultRootDir = Path.GetTempPath(),
        });
        GC.Collect();
        var clock = Stopwatch.StartNew();
        trainer.Fit(new Mlp(), batches);
        return batches.Count * BatchSize / clock.Elapsed.TotalSeconds;
    }

    private sealed class Mlp : LightningModule<Tensor>
    {
        private readonly Sequential net = nn.Sequential(nn.Linear(512, 1024), nn.ReLU(), nn.Linear(1024, 1024), nn.ReLU(), nn.Linear(1024, 512));

        public Mlp() : base(nameof(Mlp)) => RegisterComponents();

        public override Tensor? TrainingStep(Tensor batch, int batchIdx) => nn.functional.mse_loss(net.forward(batch), batch);

        public override OptimizerConfiguration ConfigureOptimizers() => optim.SGD(parameters(), 0.01);
    }
}
