using System.Diagnostics;
using System.Globalization;
using Lightning.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Benchmarks;

/// <summary>
/// Trainer overhead against a hand-written TorchSharp loop, as Lightning's parity tests: the same model, data order
/// and seed, alternating raw/trainer runs after a warm-up; median ratio of epoch times and the largest final-loss gap.
/// </summary>
internal static class ParityBenchmark
{
    public const string Name = "parity";

    private const int DefaultPairs = 5;

    // .NET recompiles a method after 30 calls (with instrumentation) and again after 30 more (optimized). The checkpoint
    // path runs once an epoch, so after one warm-up run it was still being recompiled during the first pair: over 6
    // processes the RNN's first pair ran 9% slower with the trainer, later pairs and runs without checkpoints did not.
    private const int WarmupRuns = 3;

    public static void Run(string[] args)
    {
        // One libtorch thread by default: on a 2-core machine .NET's own threads (GC, JIT) otherwise steal time from
        // one side or the other and the ratio measures noise. --threads=all uses every core.
        torch.set_num_threads(args.Contains("--threads=all") ? Environment.ProcessorCount : 1);
        // The procedure is 5 pairs; more (--pairs=N) narrow the median where the machine's noise exceeds the margin.
        int pairs = DefaultPairs;
        if (args.FirstOrDefault(a => a.StartsWith("--pairs=", StringComparison.Ordinal)) is { } option
            && (!int.TryParse(option["--pairs=".Length..], CultureInfo.InvariantCulture, out pairs) || pairs < 1))
            throw new ArgumentException($"{option}: the number of paired runs must be a whole number of at least 1.");
        var results = new List<(string Name, double Ratio, double LossDiff)>
        {
            Compare("autoencoder (Fashion-MNIST 60k, batch 64)", AutoEncoderCase(), pairs),
            Compare("parity RNN (LSTM 10->20, Linear 5, batch 30)", RnnCase(), pairs),
        };
        var worst = results.MaxBy(r => r.Ratio);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"parity: trainer/raw = {worst.Ratio:0.000} (loss diff = {results.Max(r => r.LossDiff):0.###e+0})"));
    }

    /// <summary>A model, its data, and enough epochs per timed run for the time to be measurable.</summary>
    private sealed record Case(Func<ParityModule> Model, Func<IEnumerable<IList<Tensor>>> Data, int Epochs);

    private static (string, double, double) Compare(string name, Case benchmark, int pairs)
    {
        Console.WriteLine(name);
        double rawLoss = 0, trainerLoss = 0, lossDiff = 0;
        var ratio = PairedRuns.MedianRatio(pairs,
            seed => Time(benchmark, useTrainer: false, seed, out rawLoss),
            seed => Time(benchmark, useTrainer: true, seed, out trainerLoss),
            (run, raw, trainer) =>
            {
                lossDiff = Math.Max(lossDiff, Math.Abs(trainerLoss - rawLoss));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  run {run}: raw {raw:0.000}s  trainer {trainer:0.000}s  ratio {trainer / raw:0.000}  losses {rawLoss:0.000000} / {trainerLoss:0.000000}"));
            },
            alternate: true, warmups: WarmupRuns);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  median trainer/raw = {ratio:0.000}"));
        return (name, ratio, lossDiff);
    }

    /// <summary>Seconds for one run; <paramref name="finalLoss"/> is its last training loss.</summary>
    private static double Time(Case benchmark, bool useTrainer, int seed, out double finalLoss)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        manual_seed(seed);
        var model = benchmark.Model();
        var data = benchmark.Data();
        var root = Path.Combine(Path.GetTempPath(), "lightning-parity", Guid.NewGuid().ToString("N"));
        var clock = Stopwatch.StartNew();
        finalLoss = useTrainer ? WithTrainer(model, data, benchmark.Epochs, root) : Raw(model, data, benchmark.Epochs);
        clock.Stop();
        model.Dispose();
        if (Directory.Exists(root)) Directory.Delete(root, recursive: true);
        return clock.Elapsed.TotalSeconds;
    }

    private static double Raw(ParityModule model, IEnumerable<IList<Tensor>> data, int epochs)
    {
        model.train();
        var optimizer = model.CreateOptimizer();
        double loss = double.NaN;
        for (int epoch = 0; epoch < epochs; epoch++)
        {
            foreach (var batch in data)
            {
                using var scope = NewDisposeScope();
                var value = model.Loss(batch);
                optimizer.zero_grad();
                value.backward();
                optimizer.step();
                loss = value.ToDouble();
            }
        }
        return loss;
    }

    private static double WithTrainer(ParityModule model, IEnumerable<IList<Tensor>> data, int epochs, string root)
    {
        // As Lightning's parity test, minus what the issue keeps at defaults: progress bar, checkpoints, loggers.
        var trainer = new Trainer(new TrainerOptions { MaxEpochs = epochs, DefaultRootDir = root, EnableModelSummary = false });
        trainer.Fit(model, data);
        return trainer.LastTrainLoss!.Value;
    }

    private static Case AutoEncoderCase()
    {
        var dataset = new FashionMnist();
        return new Case(
            () => new ParityModule(nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 3), nn.ReLU(), nn.Linear(3, 64),
                nn.ReLU(), nn.Linear(64, 784)), autoencode: true, lr: 1e-3),
            () => utils.data.DataLoader(dataset, batchSize: 64, shuffle: true, seed: 7), Epochs: 1);
    }

    private static Case RnnCase()
    {
        // Lightning's AverageDataset: 300 sequences of 100 steps with 10 features; target = top half + rolled bottom half.
        using var generator = new Generator(11);
        var x = randn([300, 100, 10], generator: generator).DetachFromDisposeScope();
        var y = (x[.., .., ..5] + x[.., .., 5..].roll(1, -1)).DetachFromDisposeScope();
        var dataset = utils.data.TensorDataset(x, y);
        return new Case(() => new ParityModule(new LstmRegressor(), autoencode: false, lr: 0.02),
            () => utils.data.DataLoader(dataset, batchSize: 30, shuffle: false), Epochs: 20);
    }

    private sealed class LstmRegressor : nn.Module<Tensor, Tensor>
    {
        private readonly TorchSharp.Modules.LSTM rnn = nn.LSTM(10, 20, batchFirst: true);
        private readonly nn.Module<Tensor, Tensor> linear = nn.Linear(20, 5);

        public LstmRegressor() : base(nameof(LstmRegressor)) => RegisterComponents();

        public override Tensor forward(Tensor x) => linear.forward(rnn.forward(x).Item1);
    }

    private sealed class ParityModule : LightningModule<IList<Tensor>>
    {
        private readonly nn.Module<Tensor, Tensor> net;
        private readonly bool _autoencode;
        private readonly double _lr;

        public ParityModule(nn.Module<Tensor, Tensor> net, bool autoencode, double lr) : base(nameof(ParityModule))
        {
            (this.net, _autoencode, _lr) = (net, autoencode, lr);
            RegisterComponents();
        }

        public Tensor Loss(IList<Tensor> batch)
        {
            if (!_autoencode) return nn.functional.mse_loss(net.forward(batch[0]), batch[1]);
            var x = batch[0].view(batch[0].size(0), -1);
            return nn.functional.mse_loss(net.forward(x), x);
        }

        public optim.Optimizer CreateOptimizer() => optim.Adam(parameters(), _lr);

        // As Lightning's parity modules, the step only returns its loss: the comparison is of the loops, not of logging.
        public override Tensor TrainingStep(IList<Tensor> batch, int batchIdx) => Loss(batch);

        public override OptimizerConfiguration ConfigureOptimizers() => CreateOptimizer();
    }
}
