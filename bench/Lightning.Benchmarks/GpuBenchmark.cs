using System.Diagnostics;
using System.Globalization;
using Lightning.Callbacks;
using Lightning.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Benchmarks;

/// <summary>
/// Our Trainer against PyTorch Lightning on one GPU: a Fashion-MNIST-shaped CNN and an MLP, the same data, batches,
/// optimizer and epochs on both sides. bench/reference/lightning_gpu.py runs Lightning's side as a server this process
/// drives, so the two sides alternate within one run (PairedRuns). Each run's figure is its last epoch's time (earlier
/// epochs warm up). Last line: <c>gpu: lightning.net/pytorch-lightning epoch time = R (cnn), S (mlp); 16-mixed/32-true
/// = P (ours), Q (theirs)</c>, the medians of the paired ratios and of each side's times.
/// </summary>
/// <remarks>
/// Options: --device cuda|cpu (cpu runs "bf16-mixed" in place of "16-mixed"), --pairs N (5), --epochs N (2),
/// --python EXE (python3), --script PATH (lightning_gpu.py beside this program, else under bench/reference),
/// --data FOLDER (Fashion-MNIST; generated images where it is missing), --samples N (60000), --side lightning|raw.
/// </remarks>
internal static class GpuBenchmark
{
    public const string Name = "gpu";

    private const int BatchSize = 256;
    private static readonly TimeSpan StartLimit = TimeSpan.FromSeconds(120), RunLimit = TimeSpan.FromSeconds(120);

    public static void Run(string[] args)
    {
        var device = Option(args, "device") ?? (cuda.is_available() ? "cuda" : "cpu");
        if (device is not ("cuda" or "cpu")) throw new ArgumentException($"--device={device} is not allowed: use cuda or cpu.");
        var pairs = IntOption(args, "pairs", 5);
        var epochs = IntOption(args, "epochs", 2);
        var samples = IntOption(args, "samples", 60000);
        var data = Option(args, "data") ?? FashionMnist.DebianRoot;
        var mixed = device == "cuda" ? "16-mixed" : "bf16-mixed";
        var script = Option(args, "script") ?? new[]
        {
            Path.Combine(AppContext.BaseDirectory, "lightning_gpu.py"),
            Path.Combine(AppContext.BaseDirectory, "../../../../reference/lightning_gpu.py"),
        }.FirstOrDefault(File.Exists) ?? throw new FileNotFoundException("lightning_gpu.py was not found beside the program; give --script=PATH.");

        using var lightning = new LightningServer(Option(args, "python") ?? "python3", script, device, data, samples, Option(args, "side") ?? "lightning");
        Console.WriteLine($"ours: TorchSharp {__version__} on {device}; theirs: {lightning.Banner}");
        var (images, labels, source) = Dataset(data, samples);
        var batches = Enumerable.Range(0, (int)((images.shape[0] + BatchSize - 1) / BatchSize))
            .Select(i => (IList<Tensor>)[images.narrow(0, i * BatchSize, Math.Min(BatchSize, images.shape[0] - i * BatchSize)),
                labels.narrow(0, i * BatchSize, Math.Min(BatchSize, labels.shape[0] - i * BatchSize))]).ToList();
        Console.WriteLine($"data: {source}, {images.shape[0]} images, {batches.Count} batches of {BatchSize}, {epochs} epochs per run, {pairs} pairs");

        // A case that fails (a libtorch call the glue cannot bind, a Lightning error) is reported and the others still run.
        var results = new Dictionary<(string Model, string Precision), (double Ratio, double Ours, double Theirs)?>();
        foreach (var (model, precision) in new[] { ("cnn", "32-true"), ("mlp", "32-true"), ("cnn", mixed) })
        {
            Console.WriteLine($"{model} {precision}");
            var ours = new List<double>();
            var theirs = new List<double>();
            double ourLoss = 0, theirLoss = 0;
            try
            {
                var ratio = PairedRuns.MedianRatio(pairs,
                    seed => lightning.Time(model, precision, seed, epochs, out theirLoss),
                    seed => TimeOurs(model, precision, seed, epochs, device, batches, out ourLoss),
                    (run, theirSeconds, ourSeconds) =>
                    {
                        theirs.Add(theirSeconds);
                        ours.Add(ourSeconds);
                        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                            $"  run {run}: ours {ourSeconds:0.000}s  theirs {theirSeconds:0.000}s  ratio {ourSeconds / theirSeconds:0.000}  losses {ourLoss:0.0000} / {theirLoss:0.0000}"));
                    },
                    alternate: true, warmups: 1);
                results[(model, precision)] = (ratio, Statistics.Median(ours), Statistics.Median(theirs));
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  median lightning.net/pytorch-lightning = {ratio:0.000}"));
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                results[(model, precision)] = null;
                Console.WriteLine($"  FAIL ({e.GetType().Name}: {e.Message.Split('\n')[0]})");
            }
        }
        var (cnn, mlp, half) = (results[("cnn", "32-true")], results[("mlp", "32-true")], results[("cnn", mixed)]);
        Console.WriteLine(
            $"gpu: lightning.net/pytorch-lightning epoch time = {Format(cnn?.Ratio)} (cnn), {Format(mlp?.Ratio)} (mlp); " +
            $"{mixed}/32-true = {Format(half?.Ours / cnn?.Ours)} (ours), {Format(half?.Theirs / cnn?.Theirs)} (theirs)");
        if (results.Values.Any(r => r is null)) Environment.ExitCode = 1;
    }

    private static string Format(double? value) => value is { } v ? v.ToString("0.000", CultureInfo.InvariantCulture) : "n/a";

    /// <summary>Fashion-MNIST's training images where installed, else generated ones of the same shape.</summary>
    private static (Tensor Images, Tensor Labels, string Source) Dataset(string folder, int samples)
    {
        if (File.Exists(Path.Combine(folder, "train-images-idx3-ubyte.gz")) || File.Exists(Path.Combine(folder, "train-images-idx3-ubyte")))
        {
            var dataset = new FashionMnist(folder);
            var count = Math.Min(samples, dataset.Images.shape[0]);
            return (dataset.Images.narrow(0, 0, count).clone(), dataset.Labels.narrow(0, 0, count).clone(), "fashion-mnist");
        }
        using var generator = new Generator(0);
        return (rand([samples, 1, 28, 28], generator: generator), randint(0, 10, [samples], generator: generator), "generated");
    }

    private static double TimeOurs(string model, string precision, int seed, int epochs, string device, List<IList<Tensor>> batches, out double loss)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        manual_seed(seed);
        using var module = new Classifier(model);
        var timer = new EpochTimer(device == "cuda");
        var trainer = new Trainer(new TrainerOptions
        {
            Accelerator = device, Devices = 1, Precision = precision, MaxEpochs = epochs, EnableProgressBar = false,
            EnableModelSummary = false, EnableCheckpointing = false, Loggers = [], Callbacks = [timer],
            DefaultRootDir = Path.Combine(Path.GetTempPath(), "lightning-gpu-bench"),
        });
        trainer.Fit(module, batches);
        loss = trainer.LastTrainLoss ?? double.NaN;
        return timer.LastEpochSeconds;
    }

    private static string? Option(string[] args, string name) =>
        args.FirstOrDefault(a => a.StartsWith($"--{name}=", StringComparison.Ordinal))?[(name.Length + 3)..];

    private static int IntOption(string[] args, string name, int fallback)
    {
        if (Option(args, name) is not { } text) return fallback;
        if (!int.TryParse(text, CultureInfo.InvariantCulture, out var value) || value < 1)
            throw new ArgumentException($"--{name}={text} is not allowed: give a whole number of at least 1.");
        return value;
    }

    /// <summary>The CNN and MLP of lightning_gpu.py, layer for layer; cross-entropy, Adam 1e-3.</summary>
    private sealed class Classifier : LightningModule<IList<Tensor>>
    {
        private readonly nn.Module<Tensor, Tensor> net;

        public Classifier(string kind) : base(nameof(Classifier))
        {
            net = kind switch
            {
                "cnn" => nn.Sequential(nn.Conv2d(1, 32, 3, padding: 1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3, padding: 1), nn.ReLU(),
                    nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10)),
                "mlp" => nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 10)),
                _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, $"Model '{kind}' is not known: use cnn or mlp."),
            };
            RegisterComponents();
        }

        public override Tensor TrainingStep(IList<Tensor> batch, int batchIdx) => nn.functional.cross_entropy(net.forward(batch[0]), batch[1]);

        public override OptimizerConfiguration ConfigureOptimizers() => optim.Adam(parameters(), 1e-3);
    }

    /// <summary>Each epoch's wall time, with the GPU's queue drained at both ends.</summary>
    private sealed class EpochTimer(bool synchronize) : Callback
    {
        private readonly Stopwatch _clock = new();

        public double LastEpochSeconds { get; private set; }

        public override void OnTrainEpochStart(Trainer trainer, LightningModule module)
        {
            if (synchronize) cuda.synchronize();
            _clock.Restart();
        }

        public override void OnTrainEpochEnd(Trainer trainer, LightningModule module)
        {
            if (synchronize) cuda.synchronize();
            LastEpochSeconds = _clock.Elapsed.TotalSeconds;
        }
    }

    /// <summary>lightning_gpu.py --serve: one process for the whole benchmark, one request line per timed run.</summary>
    private sealed class LightningServer : IDisposable
    {
        private readonly Process _process;

        public LightningServer(string python, string script, string device, string data, int samples, string side)
        {
            var start = new ProcessStartInfo(python) { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
            foreach (var argument in new[] { script, "--serve", $"--device={device}", $"--data={data}", $"--samples={samples}", $"--side={side}" })
                start.ArgumentList.Add(argument);
            try
            {
                _process = Process.Start(start)!;
            }
            catch (System.ComponentModel.Win32Exception e)
            {
                throw new InvalidOperationException($"The Python side could not start ({python}: {e.Message}).", e);
            }
            Banner = Read(StartLimit, "start").Split(' ', 2) switch
            {
                ["ready", var banner] => banner,
                [_, var error] => throw new InvalidOperationException($"The Python side did not start: {error}"),
                var other => throw new InvalidOperationException($"The Python side answered '{string.Join(' ', other)}' instead of 'ready'."),
            };
        }

        public string Banner { get; }

        public double Time(string model, string precision, int seed, int epochs, out double loss)
        {
            _process.StandardInput.WriteLine($"run {model} {precision} {seed} {epochs}");
            _process.StandardInput.Flush();
            var fields = Read(RunLimit, $"{model} {precision}").Split(' ');
            if (fields is not ["result", var seconds, var last])
                throw new InvalidOperationException($"PyTorch Lightning's {model} {precision} run failed: {string.Join(' ', fields)}");
            loss = double.Parse(last, CultureInfo.InvariantCulture);
            return double.Parse(seconds, CultureInfo.InvariantCulture);
        }

        /// <summary>The next protocol line (ready, result or error); other output, a library's chatter, is passed through.</summary>
        private string Read(TimeSpan limit, string what)
        {
            var clock = Stopwatch.StartNew();
            while (true)
            {
                var line = _process.StandardOutput.ReadLineAsync();
                if (!line.Wait(limit - clock.Elapsed > TimeSpan.Zero ? limit - clock.Elapsed : TimeSpan.Zero))
                    throw new TimeoutException($"The Python side gave no answer for {what} within {limit.TotalSeconds:0} s.");
                var text = line.Result ?? throw new InvalidOperationException(
                    $"The Python side exited (code {(_process.WaitForExit(5000) ? _process.ExitCode : -1)}) during {what}.");
                if (text.StartsWith("ready ", StringComparison.Ordinal) || text.StartsWith("result ", StringComparison.Ordinal)
                    || text.StartsWith("error ", StringComparison.Ordinal))
                    return text;
                Console.Error.WriteLine($"  python: {text}");
            }
        }

        public void Dispose()
        {
            if (!_process.HasExited)
            {
                try
                {
                    _process.StandardInput.WriteLine("quit");
                    _process.StandardInput.Close();
                }
                catch (IOException)
                {
                    // Already gone: nothing to tell it.
                }
                if (!_process.WaitForExit(10_000)) _process.Kill(entireProcessTree: true);
            }
            _process.Dispose();
        }
    }
}
