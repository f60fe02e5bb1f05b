using System.Globalization;
using Lightning;
using Lightning.Callbacks;
using Lightning.Testing;
using static TorchSharp.torch;

// One scenario per run, started by the tests as "dotnet Lightning.Core.Worker.dll <scenario> <folder>", under
// "mpiexec -n 2" for the "ddp" scenarios; each writes its results as files in the folder.
var (scenario, folder) = (args[0], args[1]);
switch (scenario)
{
    case "train": Train(folder); break;
    case "kill": Endless(folder, hangRank: null); break;
    case "hang": Endless(folder, hangRank: 1); break;
    case "exit": Endless(folder, hangRank: null, exitRank: 1); break;
    case "resumable": Resumable(folder); break;
    case "signal": UntilSignal(folder); break;
    case "save": SaveOnce(folder); break;
    case "gpus": FourGpus(folder); break;
    case "nodes": TwoNodes(folder); break;
    case "nnpack": BatchOneConvolutions(forceNnpack: false); break;
    case "nnpack-on": BatchOneConvolutions(forceNnpack: true); break;
    default: throw new ArgumentOutOfRangeException(nameof(args), scenario, "scenarios: train, kill, hang, exit, resumable, signal, save, gpus, nodes, nnpack, nnpack-on");
}

static TrainerOptions Quiet(string root) => new()
{
    DefaultRootDir = root, Accelerator = "cpu", Strategy = "ddp", Devices = 2, EnableProgressBar = false, EnableModelSummary = false,
    EnableCheckpointing = false, Loggers = [], NumSanityValSteps = 0, DistributedTimeout = TimeSpan.FromSeconds(60),
};

static void Write(string folder, string name, int rank, string text) =>
    File.WriteAllText(Path.Combine(folder, $"{name}.rank{rank}.txt"), text);

static (Regressor Model, Trainer Trainer) Fit(TrainerOptions options, IEnumerable<Tensor> loader, IEnumerable<Tensor>? val = null, string? ckptPath = null)
{
    var trainer = new Trainer(options);
    // A different start on each rank: rank 0's broadcast weights must win.
    manual_seed(11 + trainer.GlobalRank);
    var model = new Regressor();
    trainer.Fit(model, loader, val, ckptPath);
    return (model, trainer);
}

static void Train(string folder)
{
    // 2 ranks x batches of 4 through a TorchSharp DataLoader (sharded by the injected sampler): 20 steps.
    using (var rows = new IndexedRows(160, seed: 5))
    {
        var (model, trainer) = Fit(Quiet(folder) with { MaxSteps = 20 }, rows.Loader(4, shuffle: false));
        Write(folder, "fp32", trainer.GlobalRank, model.WeightsText());
        Write(folder, "fp32-steps", trainer.GlobalRank, trainer.GlobalStep.ToString(CultureInfo.InvariantCulture));
    }

    // Plain lists are sharded by batch; 80 batches of 4 with 2 accumulated batches per step: 20 steps.
    var batches = RandomBatches.Create(80, batchSize: 4, features: 16, seed: 5);
    var accumulated = Fit(Quiet(folder) with { MaxEpochs = 1, AccumulateGradBatches = 2 }, batches);
    Write(folder, "accumulate", accumulated.Trainer.GlobalRank, accumulated.Model.WeightsText());
    var bf16 = Fit(Quiet(folder) with { MaxEpochs = 1, Precision = "bf16-mixed" }, batches.Take(40).ToList());
    Write(folder, "bf16", bf16.Trainer.GlobalRank, bf16.Model.WeightsText());

    // Sampler: 21 shuffled rows in batches of 2 over 2 epochs; then a validation pass over the same rows.
    using (var rows = new IndexedRows(21, seed: 6))
    {
        var (model, trainer) = Fit(Quiet(folder) with { MaxEpochs = 2 }, rows.Loader(2, shuffle: true));
        Write(folder, "sampler", trainer.GlobalRank, string.Join(" ", model.SeenRows));
        var metrics = trainer.Validate(model, rows.Loader(2, shuffle: false));
        Write(folder, "eval", trainer.GlobalRank, string.Join("\n", metrics.OrderBy(m => m.Key)
            .Select(m => $"{m.Key} {m.Value.ToString("R", CultureInfo.InvariantCulture)}")));
        Write(folder, "eval-weights", trainer.GlobalRank, model.WeightsText());
    }

    // Checkpoints and resume: the default loggers and checkpoint callback, 2 epochs at once or 1 + 1 resumed.
    using (var rows = new IndexedRows(48, seed: 7))
    {
        var logged = Quiet(Path.Combine(folder, "ckpt")) with { Loggers = null, EnableCheckpointing = true, MaxEpochs = 1 };
        var first = Fit(logged, rows.Loader(4, shuffle: true));
        var checkpoint = first.Trainer.CheckpointCallback!.BestModelPath!;
        Write(folder, "checkpoint", first.Trainer.GlobalRank, checkpoint);
        var resumed = Fit(Quiet(folder) with { MaxEpochs = 2 }, rows.Loader(4, shuffle: true), ckptPath: checkpoint);
        var straight = Fit(Quiet(folder) with { MaxEpochs = 2 }, rows.Loader(4, shuffle: true));
        Write(folder, "resumed", resumed.Trainer.GlobalRank, resumed.Model.WeightsText());
        Write(folder, "straight", straight.Trainer.GlobalRank, straight.Model.WeightsText());
    }

    // A stop asked for by rank 1 alone (as early stopping on its own metrics would) must stop both ranks at the same step.
    var stopOnOneRank = new LambdaCallback(onTrainBatchEnd: (trainer, _, _, _, _) =>
    {
        if (trainer.GlobalRank == 1 && trainer.GlobalStep == 3) trainer.ShouldStop = true;
    });
    var stopped = Fit(Quiet(folder) with { MaxEpochs = 5, Callbacks = [stopOnOneRank] }, batches);
    Write(folder, "stopped", stopped.Trainer.GlobalRank, $"{stopped.Trainer.GlobalStep} {stopped.Trainer.CurrentEpoch}");

    // A datamodule prepares its data once per machine (local rank 0) and sets up on every rank.
    var datamodule = new CountingDataModule(batches);
    var prepared = new Trainer(Quiet(folder) with { MaxEpochs = 1 });
    prepared.Fit(new Regressor(), datamodule);
    Write(folder, "prepared", prepared.GlobalRank, $"{datamodule.Prepared} {datamodule.SetUp}");

    FabricCollectives(folder);
}

// Fabric's collectives, and a hand-written loop whose gradients Fabric averages.
static void FabricCollectives(string folder)
{
    var fabric = new Fabric(new FabricOptions { Accelerator = "cpu", Strategy = "ddp", Devices = 2 });
    var rank = fabric.GlobalRank;
    using var value = tensor(new[] { rank + 1.0f, 10.0f * (rank + 1) });
    var lines = new List<string>
    {
        $"sum {Join(fabric.AllReduce(value, "sum"))}",
        $"mean {Join(fabric.AllReduce(value))}",
        $"max {Join(fabric.AllReduce(value, "max"))}",
        $"gather {Join(fabric.AllGather(value))}",
        $"broadcast {Join(fabric.Broadcast(value, src: 1))}",
    };
    // More than one 25 MB bucket: every element must come back summed.
    using (var large = full(7_000_000, rank + 1.0f))
    using (var summed = fabric.AllReduce(large, "sum"))
        lines.Add($"bucketed {summed.eq(3.0f).all().item<bool>()}");
    fabric.Barrier();

    manual_seed(11 + rank);
    var model = fabric.Setup(new Regressor());
    var optimizer = fabric.SetupOptimizer(TorchSharp.torch.optim.SGD(model.parameters(), 0.05));
    foreach (var batch in fabric.SetupDataLoader(RandomBatches.Create(40, batchSize: 4, features: 16, seed: 5)))
    {
        using var scope = NewDisposeScope();
        var x = batch[.., 1..];
        var loss = TorchSharp.torch.nn.functional.mse_loss(model.forward(x), x.sum(1, keepdim: true));
        optimizer.zero_grad();
        fabric.Backward(loss);
        fabric.Step(optimizer);
    }
    fabric.Save(Path.Combine(folder, "fabric.ckpt"), new Dictionary<string, object> { ["model"] = model });
    lines.Add($"saved {File.Exists(Path.Combine(folder, "fabric.ckpt"))}");
    Write(folder, "fabric", rank, string.Join("\n", lines));
    Write(folder, "fabric-weights", rank, model.WeightsText());

    static string Join(Tensor t) => string.Join(",", t.to(ScalarType.Float64).flatten().data<double>().ToArray().Select(v => v.ToString("R", CultureInfo.InvariantCulture)));
}

// Trains until killed: each rank writes its process id once training runs; with hangRank, that rank stops answering;
// with exitRank, that rank ends its process mid-training (exit code 0, as a program that returns early would).
static void Endless(string folder, int? hangRank, int? exitRank = null)
{
    var batches = RandomBatches.Create(64, batchSize: 4, features: 16, seed: 1);
    var options = Quiet(folder) with
    {
        MaxEpochs = -1, DistributedTimeout = TimeSpan.FromSeconds(5),
        Callbacks = [new LambdaCallback(onTrainBatchEnd: (trainer, _, _, _, batchIdx) =>
        {
            if (trainer.GlobalStep == 1)
                File.WriteAllText(Path.Combine(folder, $"rank{trainer.GlobalRank}.pid"), Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
            if (trainer.GlobalRank == hangRank && trainer.GlobalStep == 3) Thread.Sleep(TimeSpan.FromMinutes(10));
            if (trainer.GlobalRank == exitRank && trainer.GlobalStep == 3)
            {
                File.WriteAllText(Path.Combine(folder, $"rank{exitRank}.exit"), DateTime.UtcNow.Ticks.ToString(CultureInfo.InvariantCulture));
                Environment.Exit(0);
            }
        })],
    };
    Fit(options, batches);
}

// Trains 30 epochs (about 10 s) from the newest checkpoint in <folder>/ckpt (ckptPath "last"), saving every 5 steps, then writes the
// final weights; the crash tests kill it at random moments and start it again until it finishes.
static void Resumable(string folder)
{
    // One thread: on a 2-core machine shared with other tests, two OpenMP threads made each step 10x slower.
    set_num_threads(1);
    LightningSeed.SeedEverything(7);
    var model = new CrashModel(hidden: 512, tableBytes: 24 << 20);
    var trainer = new Trainer(new TrainerOptions
    {
        DefaultRootDir = folder, Accelerator = "cpu", MaxEpochs = 30, EnableProgressBar = false, EnableModelSummary = false,
        Loggers = [], NumSanityValSteps = 0,
        Callbacks =
        [
            new ModelCheckpoint(dirPath: Path.Combine(folder, "ckpt"), saveLast: true, everyNTrainSteps: 5),
            // 10 ms a step: the run lasts about 10 s whatever else loads the machine, so random kills land all over it.
            new LambdaCallback(onTrainBatchEnd: (t, _, _, _, _) =>
            {
                if (t.GlobalStep % 10 == 1) File.WriteAllText(Path.Combine(folder, $"running.{Environment.ProcessId}"), t.GlobalStep.ToString(CultureInfo.InvariantCulture));
                Thread.Sleep(10);
            }),
        ],
    });
    trainer.Fit(model, CrashModel.Loader(rows: 256, batchSize: 8), ckptPath: "last");
    File.WriteAllText(Path.Combine(folder, "final.txt"), CrashModel.WeightsText(model));
}

// Trains until SIGINT or SIGTERM, saving a checkpoint every step (all kept) and one on the exception.
static void UntilSignal(string folder)
{
    set_num_threads(1);
    LightningSeed.SeedEverything(7);
    var trainer = new Trainer(new TrainerOptions
    {
        DefaultRootDir = folder, Accelerator = "cpu", MaxEpochs = 1000, EnableProgressBar = false, EnableModelSummary = false,
        Loggers = [], NumSanityValSteps = 0,
        Callbacks =
        [
            new ModelCheckpoint(dirPath: Path.Combine(folder, "ckpt"), saveLast: true, saveTopK: -1, everyNTrainSteps: 1),
            new OnExceptionCheckpoint(folder),
            new LambdaCallback(onTrainBatchEnd: (t, _, _, _, _) =>
            {
                if (t.GlobalStep == 20) File.WriteAllText(Path.Combine(folder, "running"), Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
                Thread.Sleep(5);
            }),
        ],
    });
    trainer.Fit(new CrashModel(hidden: 32), CrashModel.Loader(rows: 64, batchSize: 8));
}

// A Trainer is built (which decides NNPACK's default), then batch-1 convolutions run, where libtorch would try NNPACK;
// the test reads this process's stderr. With forceNnpack the user's override turns NNPACK on first.
static void BatchOneConvolutions(bool forceNnpack)
{
    if (forceNnpack) LibTorch.NnpackEnabled = true;
    _ = new Trainer(new TrainerOptions { Accelerator = "cpu", EnableProgressBar = false, EnableModelSummary = false, Loggers = [] });
    var conv = nn.Conv2d(3, 8, 3);
    using (no_grad())
        for (int i = 0; i < 3; i++) conv.forward(randn(1, 3, 16, 16));
    Console.WriteLine($"nnpack available={LibTorch.NnpackAvailable} enabled={LibTorch.NnpackEnabled}");
}

// One step, then one checkpoint written after the fit (on this thread), for tracing its system calls.
static void SaveOnce(string folder)
{
    var trainer = new Trainer(new TrainerOptions
    {
        DefaultRootDir = folder, Accelerator = "cpu", MaxSteps = 1, EnableProgressBar = false, EnableModelSummary = false,
        EnableCheckpointing = false, Loggers = [], NumSanityValSteps = 0,
    });
    trainer.Fit(new CrashModel(hidden: 8), CrashModel.Loader(rows: 8, batchSize: 8));
    trainer.SaveCheckpoint(Path.Combine(folder, "model.ckpt"));
}

// Trainer(devices=4, accelerator="gpu") on a machine said to have four GPUs: started without mpiexec, the trainer
// relaunches this program under "mpiexec -n 4"; each rank writes which strategy and device it got. Nothing is placed
// on a device, so no GPU is needed.
static void FourGpus(string folder)
{
    Lightning.Accelerators.Accelerator.CudaDeviceCountOverride.Value = 4;
    var trainer = new Trainer(new TrainerOptions { Devices = 4, Accelerator = "gpu", EnableProgressBar = false, Loggers = [] });
    var strategy = trainer.Strategy;
    Write(folder, "gpus", trainer.GlobalRank, string.Join(" ", strategy.Accelerator.Name, strategy.GetType().Name,
        strategy.WorldSize, strategy.GlobalRank, strategy.LocalRank, strategy.RootDevice.ToString()));
}

// NumNodes = 2 with one device each: started by mpiexec across two hosts (scripts/two-hosts.sh) or on one; each rank
// writes its weights after 10 steps and the host it ran on.
static void TwoNodes(string folder)
{
    var batches = RandomBatches.Create(20, batchSize: 4, features: 16, seed: 5);
    var (model, trainer) = Fit(Quiet(folder) with { Devices = 1, NumNodes = 2, MaxEpochs = 1 }, batches);
    Write(folder, "nodes", trainer.GlobalRank, model.WeightsText());
    Write(folder, "host", trainer.GlobalRank, System.Net.Dns.GetHostName());
}

/// <summary>An MLP with dropout (so resuming must restore the random generator) trained with Adam on fixed random rows.</summary>
sealed class CrashModel : LightningModule<IList<Tensor>>
{
    private readonly TorchSharp.Modules.Sequential net;

    private readonly Tensor table;

    /// <summary>
    /// <paramref name="tableBytes"/> adds a constant buffer: it costs no compute but makes every checkpoint write take
    /// long enough for a kill to land in the middle of one.
    /// </summary>
    public CrashModel(int hidden, long tableBytes = 0) : base(nameof(CrashModel))
    {
        net = nn.Sequential(nn.Linear(16, hidden), nn.ReLU(), nn.Dropout(0.1), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1));
        using var generator = new Generator(5);
        table = rand(tableBytes / sizeof(float), generator: generator);
        RegisterComponents();
    }

    public Tensor forward(Tensor x) => net.forward(x);

    public override Tensor? TrainingStep(IList<Tensor> batch, int batchIdx) =>
        nn.functional.mse_loss(forward(batch[0]), batch[1]);

    public override OptimizerConfiguration ConfigureOptimizers() => TorchSharp.torch.optim.Adam(parameters(), 1e-3);

    public static TorchSharp.Modules.IterableDataLoader Loader(int rows, int batchSize)
    {
        using var generator = new Generator(42);
        var x = randn([rows, 16], generator: generator);
        var y = randn([rows, 1], generator: generator);
        return TorchSharp.torch.utils.data.DataLoader(TorchSharp.torch.utils.data.TensorDataset(x, y), batchSize, new Lightning.Data.EpochShuffler(rows, seed: 3));
    }

    /// <summary>Every weight's exact bits, so two runs compare bit for bit.</summary>
    public static string WeightsText(nn.Module module) => string.Join("\n", module.state_dict().Select(p =>
        $"{p.Key} {Convert.ToHexString(p.Value.contiguous().bytes)}"));
}

sealed class CountingDataModule(IReadOnlyList<Tensor> batches) : LightningDataModule<Tensor>
{
    public int Prepared { get; private set; }
    public int SetUp { get; private set; }

    public override void PrepareData() => Prepared++;
    public override void Setup(Stage stage) => SetUp++;
    public override IEnumerable<Tensor> TrainDataLoader() => batches;
}
