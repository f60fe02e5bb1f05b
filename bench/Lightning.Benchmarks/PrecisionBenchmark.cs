using System.Diagnostics;
using System.Globalization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lightning.Benchmarks;

/// <summary>Training-step time of "bf16-mixed" against "32-true" for a Linear-heavy model, alternating, as a ratio from one run.</summary>
internal static class PrecisionBenchmark
{
    public const string Name = "precision";

    private const int Steps = 60, Pairs = 5;

    public static void Run(string[] args)
    {
        var flags = File.Exists("/proc/cpuinfo") ? File.ReadAllText("/proc/cpuinfo") : "";
        var nativeBf16 = flags.Contains("avx512_bf16") || flags.Contains("amx_bf16");
        Console.WriteLine($"CPU bf16 support: {(nativeBf16 ? "native (avx512_bf16/amx_bf16)" : "none: bf16 matmuls are emulated, so expect no speed-up")}");
        var batches = Enumerable.Range(0, Steps).Select(_ => randn(256, 1024).DetachFromDisposeScope()).ToList();
        var ratio = PairedRuns.MedianRatio(Pairs, _ => Time("32-true", batches), _ => Time("bf16-mixed", batches), (run, full, mixed) =>
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  run {run}: 32-true {full * 1000:0.00} ms/step  bf16-mixed {mixed * 1000:0.00} ms/step  ratio {mixed / full:0.000}")));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"precision: bf16-mixed/32-true step time = {ratio:0.000}"));
    }

    private static double Time(string precision, IReadOnlyList<Tensor> batches)
    {
        manual_seed(0);
        var model = new Mlp();
        var trainer = new Trainer(new TrainerOptions
        {
            MaxEpochs = 1, Precision = precision, Accelerator = "cpu", Loggers = [], EnableCheckpointing = false,
            EnableProgressBar = false, EnableModelSummary = false, DefaultRootDir = Path.GetTempPath(),
        });
        GC.Collect();
        var clock = Stopwatch.StartNew();
        trainer.Fit(model, batches);
        return clock.Elapsed.TotalSeconds / batches.Count;
    }

    private sealed class Mlp : LightningModule<Tensor>
    {
        private readonly Sequential net = nn.Sequential(nn.Linear(1024, 2048), nn.ReLU(), nn.Linear(2048, 2048), nn.ReLU(), nn.Linear(2048, 1024));

        public Mlp() : base(nameof(Mlp)) => RegisterComponents();

        public override Tensor? TrainingStep(Tensor batch, int batchIdx) =>
            nn.functional.mse_loss(net.forward(batch).to(ScalarType.Float32), batch);

        public override OptimizerConfiguration ConfigureOptimizers() => optim.SGD(parameters(), 0.01);
    }
}
