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
    case "exit-sharded": Endless(folder, hangRank: null, exitRank: 1, strategy: "ddp_sharded"); break;
    case "sharded": Sharded(folder); break;
    case "sharded-save": ShardedSave(folder); break;
    case "sharded-resume": ShardedResume(folder); break;
    case "resumable": Resumable(folder); break;
    case "signal": UntilSignal(folder); break;
    case "save": SaveOnce(folder); break;
    case "gpus": FourGpus(folder); break;
    case "gpus-zero2": FourGpus(folder, "deepspeed_stage_2", "16"); break;
    case "nodes": TwoNodes(folder); break;
    case "metrics": MetricsOnRanks(folder); break;
    case "nnpack": BatchOneConvolutions(forceNnpack: false); break;
    case "nnpack-on": BatchOneConvolutions(forceNnpack: true); break;
    default: throw new ArgumentOutOfRangeException(nameof(args), scenario, "scenarios: train, kill, hang, exit, exit-sharded, gpus-zero2, sharded, sharded-save, sharded-resume, resumable, signal, save, gpus, nodes, nnpack, nnpack-on, metrics");
}

// Each rank validates its own, uneven share of MetricSamples (no distributed sampler, so no padding) and logs every
// metric object; the epoch values (computed over both ranks) and the confusion matrices go to files.
static void MetricsOnRanks(string folder)
{
    var trainer = new Trainer(Quiet(folder) with { UseDistributedSampler = false });
    using var samples = new MetricSamples();
    var module = new MetricsModule(samples);
    var values = trainer.Validate(module, MetricSamples.RankBatches(trainer.GlobalRank));
    Write(folder, "metrics", trainer.GlobalRank, string.Join("\n", values.OrderBy(m => m.Key)
        .Select(m => $"{m.Key} {m.Value.ToString("R", CultureInfo.InvariantCulture)}")));
    Write(folder, "confmat", trainer.GlobalRank, $"{module.BinaryConfmat}\n{module.MulticlassConfmat}");
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
static void Endless(string folder, int? hangRank, int? exitRank = null, string strategy = "ddp")
{
    var batches = RandomBatches.Create(64, batchSize: 4, features: 16, seed: 1);
    var options = Quiet(folder) with
    {
        Strategy = strategy, MaxEpochs = -1, DistributedTimeout = TimeSpan.FromSeconds(5),
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

// "ddp" and "ddp_sharded" side by side under mpiexec -n N (any N: Devices "auto" takes it from mpiexec), with Adam over
// two parameter groups: plain, clipped by norm, with accumulation, with a per-step scheduler, by manual optimization, in
// bf16-mixed, and with loss scaling that meets an overflow; then with every other elementwise optimizer. Buckets of 100
// elements make every collective span several buckets and shards that start and end inside parameters.
static void Sharded(string folder)
{
    var batches = RandomBatches.Create(40, batchSize: 4, features: 16, seed: 5);
    foreach (var name in new[] { "ddp", "ddp_sharded" })
    {
        Lightning.Strategies.StrategyChoice Strategy() => name == "ddp" ? "ddp" : Sharding();
        void Run(string run, Func<TrainerOptions, TrainerOptions> configure, Func<ShardingRegressor> create, Action<Trainer>? after = null)
        {
            var trainer = new Trainer(configure(Quiet(folder) with { Strategy = Strategy(), Devices = "auto", MaxSteps = 20 }));
            manual_seed(11 + trainer.GlobalRank);
            var model = create();
            trainer.Fit(model, batches);
            Write(folder, $"{run}-{name}", trainer.GlobalRank, model.WeightsText());
            after?.Invoke(trainer);
        }
        Run("adam", o => o, () => new ShardingRegressor());
        Run("clip", o => o with { GradientClipVal = 0.05 }, () => new ShardingRegressor());
        Run("accumulate", o => o with { AccumulateGradBatches = 2, MaxSteps = 10 }, () => new ShardingRegressor());
        Run("scheduler", o => o, () => new ShardingRegressor(scheduler: true));
        Run("manual", o => o, () => new ShardingRegressor(manual: true));
        Run("bf16", o => o with { Precision = "bf16-mixed" }, () => new ShardingRegressor());
        // Loss scaling with an infinite gradient on rank 1 at step 3, in the last parameter (the last rank's shard under
        // "ddp_sharded"): every rank must skip that step and halve the scale.
        Run("scaled", o => o with { Precision = new Lightning.Precision.MixedPrecision(TorchSharp.DeviceType.CPU, ScalarType.BFloat16, new Lightning.Precision.GradScaler()) },
            () => new ShardingRegressor(inf: (1, 3)), trainer => Write(folder, $"scale-{name}", trainer.GlobalRank, trainer.Strategy.Precision.SaveState()!.ToJsonString()));
        foreach (var optimizer in ShardingRegressor.OptimizerNames.Skip(1))
            Run(optimizer, o => o, () => new ShardingRegressor(optimizer));
        FabricLoop(folder, name);
    }
}

// A hand-written Fabric loop (Adam, clipping by norm) for 10 steps, saved, loaded into a fresh model and optimizer, and
// continued for 10 more; its weights are written after both halves.
static void FabricLoop(string folder, string strategy)
{
    var fabric = new Fabric(new FabricOptions { Accelerator = "cpu", Strategy = strategy == "ddp" ? "ddp" : Sharding(), Devices = "auto" });
    var batches = RandomBatches.Create(40, batchSize: 4, features: 16, seed: 5);
    (nn.Module Model, TorchSharp.torch.optim.Optimizer Optimizer) Build()
    {
        manual_seed(11 + fabric.GlobalRank);
        var model = fabric.Setup(new ShardingRegressor());
        return (model, fabric.SetupOptimizer(TorchSharp.torch.optim.Adam(model.parameters(), 0.01)));
    }
    void Train((nn.Module Model, TorchSharp.torch.optim.Optimizer Optimizer) run, IEnumerable<Tensor> part)
    {
        foreach (var batch in fabric.SetupDataLoader(part))
        {
            using var scope = NewDisposeScope();
            var x = batch[.., 1..];
            var loss = nn.functional.mse_loss(((ShardingRegressor)run.Model).forward(x), x.sum(1, keepdim: true));
            run.Optimizer.zero_grad();
            fabric.Backward(loss);
            fabric.ClipGradients(run.Optimizer, maxNorm: 0.5);
            fabric.Step(run.Optimizer);
        }
    }
    var first = Build();
    Train(first, batches.Take(20));
    var file = Path.Combine(folder, $"fabric-{strategy}.ckpt");
    fabric.Save(file, new Dictionary<string, object> { ["model"] = first.Model, ["optimizer"] = first.Optimizer, ["step"] = 10 });
    var second = Build();
    var values = fabric.Load(file, new Dictionary<string, object> { ["model"] = second.Model, ["optimizer"] = second.Optimizer });
    Train(second, batches.Skip(20));
    Write(folder, $"fabric-{strategy}", fabric.GlobalRank, $"{values["step"]}\n{((ShardingRegressor)second.Model).WeightsText()}");
}

static Lightning.Strategies.DdpShardedStrategy Sharding() => new(TimeSpan.FromSeconds(60)) { ShardBucketElements = 100 };

// Every rank sees all 10 batches (no distributed sampler), so the run does not depend on the world size: one epoch under
// "ddp_sharded" then a checkpoint, and (for the bit-exact check) two epochs straight.
static void ShardedSave(string folder)
{
    var options = Quiet(folder) with { Strategy = Sharding(), Devices = "auto", UseDistributedSampler = false, MaxEpochs = 1 };
    var trainer = new Trainer(options);
    var model = ShardedResumeModel();
    trainer.Fit(model, ShardedResumeBatches());
    trainer.SaveCheckpoint(Path.Combine(folder, "half.ckpt"));
    Write(folder, "half", trainer.GlobalRank, model.WeightsText());
    var straight = new Trainer(options with { Strategy = Sharding(), MaxEpochs = 2 });
    var straightModel = ShardedResumeModel();
    straight.Fit(straightModel, ShardedResumeBatches());
    Write(folder, "straight", straight.GlobalRank, straightModel.WeightsText());
}

// The second epoch from half.ckpt, at whatever world size mpiexec gives.
static void ShardedResume(string folder)
{
    var trainer = new Trainer(Quiet(folder) with { Strategy = Sharding(), Devices = "auto", UseDistributedSampler = false, MaxEpochs = 2 });
    var model = ShardedResumeModel();
    trainer.Fit(model, ShardedResumeBatches(), ckptPath: Path.Combine(folder, "half.ckpt"));
    Write(folder, $"resumed-{trainer.WorldSize}", trainer.GlobalRank, model.WeightsText());
}

static ShardingRegressor ShardedResumeModel()
{
    manual_seed(11);
    return new ShardingRegressor(scheduler: true);
}

static List<Tensor> ShardedResumeBatches() => RandomBatches.Create(10, batchSize: 8, features: 16, seed: 9).ToList();

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
                if (t.GlobalStep == 40) File.WriteAllText(Path.Combine(folder, "running"), Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
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
static void FourGpus(string folder, string strategyName = "auto", string precision = "32-true")
{
    Lightning.Accelerators.Accelerator.CudaDeviceCountOverride.Value = 4;
    var trainer = new Trainer(new TrainerOptions { Devices = 4, Accelerator = "gpu", Strategy = strategyName, Precision = precision, EnableProgressBar = false, Loggers = [] });
    var strategy = trainer.Strategy;
    Write(folder, "gpus", trainer.GlobalRank, string.Join(" ", strategy.Accelerator.Name, strategy.GetType().Name,
        strategy.WorldSize, strategy.GlobalRank, strategy.LocalRank, strategy.RootDevice.ToString(), trainer.Precision));
}

// NumNodes = 2 with one device each: started by mpiexec across two hosts (scripts/two-hosts.sh) or on one; each rank
// writes its weights after 10 steps and the host it ran on.
static void TwoNodes(string folder)
{
    var batches = RandomBatches.Create(20, batchSize: 4, features: 16, seed: 5);
    var (model, trainer) = Fit(Quiet(folder) with { Devices = 1, NumNodes = 2, MaxEpochs = 1 }, batches);
    Write(folder, "nodes", trainer.GlobalRank, model.WeightsText());
    var sharded = new Trainer(Quiet(folder) with { Strategy = Sharding(), Devices = 1, NumNodes = 2, MaxEpochs = 1 });
    manual_seed(11);
    var adam = new ShardingRegressor();
    sharded.Fit(adam, batches);
    Write(folder, "nodes-sharded", sharded.GlobalRank, adam.WeightsText());
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

/// <summary>Logs one of each metric per validation batch; the confusion matrices, held in fields, are computed at the epoch's end.</summary>
sealed class MetricsModule(MetricSamples samples) : LightningModule<Tensor>("metrics")
{
    private readonly Dictionary<string, Lightning.Metrics.Metric> _metrics = MetricSamples.NewMetrics();
    private readonly Lightning.Metrics.ConfusionMatrix _binaryConfusion = new(Lightning.Metrics.MetricTask.Binary);
    private readonly Lightning.Metrics.ConfusionMatrix _multiclassConfusion = new(Lightning.Metrics.MetricTask.Multiclass, MetricSamples.Classes);

    public string BinaryConfmat { get; private set; } = "";
    public string MulticlassConfmat { get; private set; } = "";

    public override Tensor? TrainingStep(Tensor batch, int batchIdx) => throw new NotSupportedException("validation only");

    public override void ValidationStep(Tensor batch, int batchIdx)
    {
        foreach (var (key, metric) in _metrics)
        {
            samples.Update(key, metric, batch);
            Log(key, metric);
        }
        _binaryConfusion.Update(samples.BinaryLogits.index_select(0, batch), samples.BinaryTarget.index_select(0, batch));
        _multiclassConfusion.Update(samples.MulticlassLogits.index_select(0, batch), samples.MulticlassTarget.index_select(0, batch));
    }

    public override void OnValidationEpochEnd()
    {
        BinaryConfmat = string.Join(" ", _binaryConfusion.Compute().data<long>().ToArray());
        MulticlassConfmat = string.Join(" ", _multiclassConfusion.Compute().data<long>().ToArray());
    }

    public override OptimizerConfiguration ConfigureOptimizers() => throw new NotSupportedException("validation only");
}
