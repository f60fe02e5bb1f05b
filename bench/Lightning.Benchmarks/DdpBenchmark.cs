using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using Lightning.Callbacks;
using Lightning.Data;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lightning.Benchmarks;

/// <summary>
/// Strategy "ddp" on this machine, in one run: samples/s of 2 ranks against 1 process on the quickstart-style
/// Fashion-MNIST CNN, the share of each step spent synchronising gradients, and Allreduce throughput for 10M floats.
/// The parent runs the 1-process baseline, then itself under <c>mpiexec -n 2</c> for the rank figures.
/// </summary>
internal static class DdpBenchmark
{
    public const string Name = "ddp";

    private const int Steps = 120, Warmup = 10, BatchSize = 64, AllreduceFloats = 10_000_000, AllreduceRepeats = 10;

    public static void Run(string[] args)
    {
        if (args is ["--rank", var resultFile]) RunRank(resultFile);
        else RunBenchmark();
    }

    private static void RunBenchmark()
    {
        var cores = Environment.ProcessorCount;
        Console.WriteLine($"{cores} cores; each of 2 ranks uses {Math.Max(1, cores / 2)} libtorch thread(s); the 1-process baseline runs with {cores} and with {Math.Max(1, cores / 2)}");
        set_num_threads(cores);
        var allCores = Measure(devices: 1);
        Console.WriteLine(Invariant($"1 process, {cores} threads: {allCores.SamplesPerSecond:0} samples/s ({allCores.StepMs:0.00} ms/step, batch {BatchSize})"));
        set_num_threads(Math.Max(1, cores / 2));
        var oneCore = Measure(devices: 1);
        Console.WriteLine(Invariant($"1 process, {Math.Max(1, cores / 2)} thread(s): {oneCore.SamplesPerSecond:0} samples/s ({oneCore.StepMs:0.00} ms/step, batch {BatchSize})"));
        var single = allCores.SamplesPerSecond >= oneCore.SamplesPerSecond ? allCores : oneCore;

        var resultFile = Path.GetTempFileName();
        try
        {
            var start = new ProcessStartInfo("mpiexec") { UseShellExecute = false };
            foreach (var argument in new[] { "-n", "2", Environment.ProcessPath! }) start.ArgumentList.Add(argument);
            if (Path.GetFileNameWithoutExtension(Environment.ProcessPath) == "dotnet") start.ArgumentList.Add(Assembly.GetEntryAssembly()!.Location);
            foreach (var argument in new[] { Name, "--rank", resultFile }) start.ArgumentList.Add(argument);
            using var ranks = Process.Start(start)!;
            ranks.WaitForExit();
            if (ranks.ExitCode != 0) throw new InvalidOperationException($"mpiexec -n 2 exited with {ranks.ExitCode}.");
            var parts = File.ReadAllText(resultFile).Split(' ').Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray();
            var (samplesPerSecond, stepMs, syncMs, allreduceMs, gradientMs, gradientFloats, freshMs) = (parts[0], parts[1], parts[2], parts[3], parts[4], parts[5], parts[6]);
            Console.WriteLine(Invariant($"2 ranks: {samplesPerSecond:0} samples/s ({stepMs:0.00} ms/step, batch {BatchSize} per rank)"));
            Console.WriteLine(Invariant($"ddp: 2 ranks / best 1 process samples/s = {samplesPerSecond / single.SamplesPerSecond:0.000}"));
            Console.WriteLine(Invariant($"ddp: gradient sync in a step (flatten, Allreduce, waiting for the slower rank, copy back) {syncMs:0.000} ms of {stepMs:0.00} ms = {100 * syncMs / stepMs:0.0}% overhead"));
            Console.WriteLine(Invariant($"ddp: Allreduce alone of the CNN's {gradientFloats:0} gradients, ranks in step: {gradientMs:0.000} ms = {100 * gradientMs / stepMs:0.0}% of a step"));
            const double bytes = AllreduceFloats * 4.0;
            Console.WriteLine(Invariant(
                $"ddp: fabric.AllReduce of {AllreduceFloats / 1e6:0}M floats ({bytes / 1e6:0} MB) into a new tensor: {bytes / allreduceMs / 1e6:0.000} GB/s ({allreduceMs:0.0} ms a call)"));
            // The returned tensor is fresh memory: where page faults are slow (VMs) that alone is a large share of the call.
            var rest = allreduceMs - freshMs;
            var withoutFresh = rest > 0 ? Invariant($"{bytes / rest / 1e6:0.000} GB/s") : "lost in this run's noise";
            Console.WriteLine(Invariant(
                $"ddp: of which allocating and first touching a fresh {bytes / 1e6:0} MB tensor takes {freshMs:0.0} ms here; the Allreduce without it: {withoutFresh}"));
        }
        finally
        {
            File.Delete(resultFile);
        }
    }

    private static void RunRank(string resultFile)
    {
        set_num_threads(Math.Max(1, Environment.ProcessorCount / 2));
        var result = Measure(devices: 2);
        var fabric = new Fabric(new FabricOptions { Accelerator = "cpu", Strategy = "ddp", Devices = 2 });
        var gradientFloats = new Cnn().parameters().Sum(p => p.numel());
        using var gradients = randn(gradientFloats);
        var gradientClock = new Stopwatch();
        for (int i = 0; i < 220; i++)
        {
            fabric.Barrier();
            if (i == 20) gradientClock.Start();
            fabric.AllReduce(gradients, "sum").Dispose();
        }
        gradientClock.Stop();
        using var buffer = randn(AllreduceFloats);
        fabric.AllReduce(buffer, "sum").Dispose();
        fabric.Barrier();
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < AllreduceRepeats; i++) fabric.AllReduce(buffer, "sum").Dispose();
        var allreduceMs = clock.Elapsed.TotalMilliseconds / AllreduceRepeats;
        fabric.Barrier();
        clock.Restart();
        for (int i = 0; i < AllreduceRepeats; i++) empty(AllreduceFloats).fill_(0).Dispose();
        var freshMs = clock.Elapsed.TotalMilliseconds / AllreduceRepeats;
        if (fabric.IsGlobalZero)
            File.WriteAllText(resultFile, Invariant(
                $"{result.SamplesPerSecond} {result.StepMs} {result.SyncMs} {allreduceMs} {gradientClock.Elapsed.TotalMilliseconds / 200} {gradientFloats} {freshMs}"));
    }

    /// <summary>Trains the CNN for <see cref="Steps"/> steps; the timings leave out the first <see cref="Warmup"/>.</summary>
    private static (double SamplesPerSecond, double StepMs, double SyncMs) Measure(int devices)
    {
        var timer = new StepTimer();
        var trainer = new Trainer(new TrainerOptions
        {
            Strategy = "ddp", Devices = devices, Accelerator = "cpu", MaxSteps = Steps, Loggers = [], EnableCheckpointing = false,
            EnableProgressBar = false, EnableModelSummary = false, NumSanityValSteps = 0, Callbacks = [timer],
        });
        LightningSeed.SeedEverything(0);
        using var train = new FashionMnist(train: true);
        using var loader = utils.data.DataLoader(train, BatchSize, shuffle: true, disposeDataset: false);
        trainer.Fit(new Cnn(), loader);
        var measured = Steps - Warmup;
        return (devices * BatchSize * measured / timer.Total.Elapsed.TotalSeconds, timer.Step.Elapsed.TotalMilliseconds / measured,
            timer.Sync.Elapsed.TotalMilliseconds / measured);
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);

    /// <summary>
    /// Times the run after the warm-up (data loading included), its steps, and the gradient sync: between the end of
    /// backward and the optimizer step only "ddp" works.
    /// </summary>
    private sealed class StepTimer : Callback
    {
        public Stopwatch Total { get; } = new();
        public Stopwatch Step { get; } = new();
        public Stopwatch Sync { get; } = new();

        public override void OnTrainBatchStart(Trainer trainer, LightningModule module, object? batch, int batchIdx)
        {
            if (trainer.GlobalStep < Warmup) return;
            Total.Start();
            Step.Start();
        }

        public override void OnTrainEnd(Trainer trainer, LightningModule module) => Total.Stop();

        public override void OnAfterBackward(Trainer trainer, LightningModule module)
        {
            if (trainer.GlobalStep >= Warmup) Sync.Start();
        }

        public override void OnBeforeOptimizerStep(Trainer trainer, LightningModule module, optim.Optimizer optimizer) => Sync.Stop();

        public override void OnTrainBatchEnd(Trainer trainer, LightningModule module, double? loss, object? batch, int batchIdx) => Step.Stop();
    }

    private sealed class Cnn : LightningModule<IList<Tensor>>
    {
        private readonly Sequential net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding: 1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding: 1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(32 * 7 * 7, 10));

        public Cnn() : base(nameof(Cnn)) => RegisterComponents();

        public override Tensor? TrainingStep(IList<Tensor> batch, int batchIdx) => nn.functional.cross_entropy(net.forward(batch[0]), batch[1]);

        public override OptimizerConfiguration ConfigureOptimizers() => optim.Adam(parameters(), 1e-3);
    }
}
