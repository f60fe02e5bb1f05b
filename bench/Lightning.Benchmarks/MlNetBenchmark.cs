using System.Diagnostics;
using System.Globalization;
using Lightning.MLNet;
using Lightning.Onnx;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lightning.Benchmarks;

/// <summary>
/// What ML.NET integration costs, as ratios from one run, on 784 features and 10 classes (Fashion-MNIST's shape, random
/// values) with a small MLP, so that the overheads are not hidden behind a heavy model:
/// <list type="bullet">
/// <item><c>Fit</c> through the Lightning estimator (reads the IDataView, shuffles, trains, exports ONNX) against the
/// Core Trainer on the same rows already in memory as batches of tensors, alternating, by median: per epoch, and the
/// estimator's one-time cost;</item>
/// <item>bulk <c>Transform</c> rows/s (blocks of TransformBatchSize rows per ONNX Runtime call, read through a cursor)
/// against ONNX Runtime running the same module's batched export directly on the same blocks in memory, and against
/// the saved chain, which OnnxTransformer scores row by row.</item>
/// </list>
/// </summary>
internal static class MlNetBenchmark
{
    public const string Name = "mlnet";

    private const int Rows = 20_000, FeatureCount = 784, Classes = 10, BatchSize = 128, Rounds = 5, LongEpochs = 3;

    public static void Run(string[] args)
    {
        manual_seed(0);
        var random = new Random(0);
        var features = new float[Rows * FeatureCount];
        for (int i = 0; i < features.Length; i++) features[i] = (float)random.NextDouble();
        var labels = Enumerable.Range(0, Rows).Select(_ => random.Next(Classes)).ToArray();
        var mlContext = new MLContext(seed: 0);
        var raw = Load(mlContext, features, labels);
        var data = mlContext.Transforms.Conversion.MapValueToKey("Label").Fit(raw).Transform(raw);
        using var x = tensor(features, [Rows, FeatureCount]);
        using var y = tensor(labels.Select(l => (long)l).ToArray(), [Rows]);
        var root = Directory.CreateTempSubdirectory("lightning-mlnet-bench-");
        try
        {
            Console.WriteLine($"{Rows:N0} rows x {FeatureCount} features, {Classes} classes, MLP {FeatureCount}-128-{Classes}, batch {BatchSize}, {torch.get_num_threads()} torch thread(s)");
            var fitRatio = CompareFit(mlContext, data, x, y, root.FullName);
            var (direct, rowByRow) = CompareTransform(mlContext, data, root.FullName);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"mlnet: fit per epoch estimator/trainer = {fitRatio:0.00}; transform rows/s batched/direct ORT = {direct:0.00}; batched/row-by-row chain = {rowByRow:0.0}"));
        }
        finally
        {
            root.Delete(recursive: true);
        }
    }

    /// <summary>
    /// Fit through the estimator against the Core Trainer on in-memory batches, for 1 and for <see cref="LongEpochs"/>
    /// epochs: the difference gives each side's time per epoch, and what is left of the estimator's one-epoch time is
    /// its one-time cost (reading the IDataView, exporting ONNX twice, opening the ONNX Runtime session).
    /// </summary>
    private static double CompareFit(MLContext mlContext, IDataView data, Tensor x, Tensor y, string root)
    {
        TrainerOptions Options(int epochs) => new()
        {
            MaxEpochs = epochs, Accelerator = "cpu", Loggers = [], EnableCheckpointing = false, EnableProgressBar = false,
            EnableModelSummary = false, DefaultRootDir = root,
        };
        double Estimator(int epochs)
        {
            var estimator = mlContext.MulticlassClassification.Trainers.Lightning(() => new Mlp(),
                new LightningTrainerOptions { BatchSize = BatchSize, TrainerOptions = Options(epochs) });
            GC.Collect();
            var clock = Stopwatch.StartNew();
            using var model = estimator.Fit(data);
            return clock.Elapsed.TotalSeconds;
        }
        var batches = InMemoryBatches(x, y);
        double CoreTrainer(int epochs)
        {
            manual_seed(1);
            using var module = new Mlp();
            GC.Collect();
            var clock = Stopwatch.StartNew();
            new Trainer(Options(epochs)).Fit(module, batches);
            return clock.Elapsed.TotalSeconds;
        }

        Estimator(1);
        CoreTrainer(1);
        var times = new Dictionary<string, List<double>> { ["e1"] = [], ["eN"] = [], ["t1"] = [], ["tN"] = [] };
        for (int round = 0; round < Rounds; round++)
        {
            // The order flips each round, so neither side always runs on a warmer cache.
            var runs = new (string Key, Func<double> Run)[]
            {
                ("e1", () => Estimator(1)), ("t1", () => CoreTrainer(1)), ("eN", () => Estimator(LongEpochs)), ("tN", () => CoreTrainer(LongEpochs)),
            };
            foreach (var (key, run) in round % 2 == 0 ? runs : runs.Reverse()) times[key].Add(run());
        }
        double e1 = Statistics.Median(times["e1"]), eN = Statistics.Median(times["eN"]), t1 = Statistics.Median(times["t1"]), tN = Statistics.Median(times["tN"]);
        double estimatorEpoch = (eN - e1) / (LongEpochs - 1), trainerEpoch = (tN - t1) / (LongEpochs - 1);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  fit, medians over {Rounds} rounds: estimator 1 epoch {e1:0.000} s, {LongEpochs} epochs {eN:0.000} s; Core Trainer on in-memory tensors 1 epoch {t1:0.000} s, {LongEpochs} epochs {tN:0.000} s"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  fit, per epoch: estimator {estimatorEpoch:0.000} s, Core Trainer {trainerEpoch:0.000} s; estimator one-time cost (read IDataView, export ONNX, open session) {e1 - estimatorEpoch:0.000} s"));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"mlnet: fit one epoch estimator/trainer = {e1 / t1:0.00}"));
        return estimatorEpoch / trainerEpoch;
    }

    /// <summary>The rows as training batches already in memory, in one shuffled order (the estimator reshuffles each epoch).</summary>
    private static List<IList<Tensor>> InMemoryBatches(Tensor x, Tensor y)
    {
        var order = randperm(x.shape[0]);
        var batches = new List<IList<Tensor>>();
        for (long start = 0; start < x.shape[0]; start += BatchSize)
        {
            var index = order.narrow(0, start, Math.Min(BatchSize, x.shape[0] - start));
            batches.Add([x.index_select(0, index).DetachFromDisposeScope(), y.index_select(0, index).DetachFromDisposeScope()]);
        }
        return batches;
    }

    /// <summary>Batched Transform rows/s over direct ONNX Runtime rows/s, and over the saved (row-by-row) chain's.</summary>
    private static (double Direct, double RowByRow) CompareTransform(MLContext mlContext, IDataView data, string root)
    {
        var options = new TrainerOptions
        {
            MaxEpochs = 1, Accelerator = "cpu", Loggers = [], EnableCheckpointing = false, EnableProgressBar = false,
            EnableModelSummary = false, DefaultRootDir = root,
        };
        using var model = mlContext.MulticlassClassification.Trainers.Lightning(() => new Mlp(),
            new LightningTrainerOptions { BatchSize = BatchSize, TrainerOptions = options }).Fit(data);
        var saved = Path.Combine(root, "model.zip");
        mlContext.Model.Save(model, data.Schema, saved);
        mlContext.ComponentCatalog.RegisterAssembly(typeof(LightningCatalog).Assembly);
        var rowByRow = mlContext.Model.Load(saved, out _);

        // The same module exported with a batch axis, run by ONNX Runtime on the same blocks of rows.
        var onnxPath = Path.Combine(root, "mlp.onnx");
        model.Module.ToOnnx(onnxPath, zeros(1, FeatureCount));
        using var sessionOptions = new SessionOptions();
        sessionOptions.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        using var session = new InferenceSession(onnxPath, sessionOptions);
        var features = data.GetColumn<VBuffer<float>>("Features").SelectMany(v => v.DenseValues()).ToArray();
        int block = model.TransformBatchSize;

        double Batched() => RowsPerSecond(() => ReadScores(model.Transform(data)));
        double Direct() => RowsPerSecond(() =>
        {
            using var runOptions = new RunOptions();
            for (int start = 0; start < Rows; start += block)
            {
                int rows = Math.Min(block, Rows - start);
                using var input = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance,
                    features.AsMemory(start * FeatureCount, rows * FeatureCount), [rows, FeatureCount]);
                using var outputs = session.Run(runOptions, session.InputNames, [input], session.OutputNames);
                outputs[0].GetTensorDataAsSpan<float>();
            }
        });

        Batched();
        Direct();
        var (batchedRates, directRates) = (new List<double>(), new List<double>());
        for (int round = 0; round < Rounds; round++)
        {
            if (round % 2 == 0) { batchedRates.Add(Batched()); directRates.Add(Direct()); }
            else { directRates.Add(Direct()); batchedRates.Add(Batched()); }
        }
        var rowRate = RowsPerSecond(() => ReadScores(rowByRow.Transform(data)));
        (rowByRow as IDisposable)?.Dispose();
        double batched = Statistics.Median(batchedRates), direct = Statistics.Median(directRates);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  transform: batched Transform (blocks of {block}) median {batched:N0} rows/s, direct ONNX Runtime median {direct:N0} rows/s over {Rounds} rounds; saved chain (row by row) {rowRate:N0} rows/s"));
        return (batched / direct, batched / rowRate);
    }

    private static void ReadScores(IDataView scored)
    {
        var score = scored.Schema["Score"];
        using var cursor = scored.GetRowCursor([score]);
        var getter = cursor.GetGetter<VBuffer<float>>(score);
        VBuffer<float> value = default;
        while (cursor.MoveNext()) getter(ref value);
    }

    private static double RowsPerSecond(Action score)
    {
        var clock = Stopwatch.StartNew();
        score();
        return Rows / clock.Elapsed.TotalSeconds;
    }


    private static IDataView Load(MLContext mlContext, float[] features, int[] labels) =>
        mlContext.Data.LoadFromEnumerable(Enumerable.Range(0, labels.Length).Select(i => new Example
        {
            Label = labels[i],
            Features = features.AsSpan(i * FeatureCount, FeatureCount).ToArray(),
        }));

    private sealed class Example
    {
        public int Label { get; set; }

        [VectorType(FeatureCount)]
        public float[] Features { get; set; } = [];
    }

    private sealed class Mlp : LightningModule<IList<Tensor>>, IOnnxExportable
    {
        private readonly Sequential net = nn.Sequential(nn.Linear(FeatureCount, 128), nn.ReLU(), nn.Linear(128, Classes));

        public Mlp() : base(nameof(Mlp)) => RegisterComponents();

        public IReadOnlyList<OnnxValue> ExportOnnx(OnnxGraph graph, IReadOnlyList<OnnxValue> inputs) => [graph.Call(net, inputs[0])];

        public override Tensor? TrainingStep(IList<Tensor> batch, int batchIdx) =>
            nn.functional.cross_entropy(net.forward(batch[0]), batch[1]);

        public override OptimizerConfiguration ConfigureOptimizers() => optim.Adam(parameters(), 1e-3);
    }
}
