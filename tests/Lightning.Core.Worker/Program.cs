using System.Globalization;
using Lightning;
using Lightning.Callbacks;
using Lightning.Testing;
using static TorchSharp.torch;

// One scenario per run, started by the tests as "mpiexec -n 2 dotnet Lightning.Core.DdpWorker.dll <scenario> <folder>".
var (scenario, folder) = (args[0], args[1]);
switch (scenario)
{
    case "train": Train(folder); break;
    case "kill": Endless(folder, hangRank: null); break;
    case "hang": Endless(folder, hangRank: 1); break;
    default: throw new ArgumentOutOfRangeException(nameof(args), scenario, "scenarios: train, kill, hang");
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

// Trains until killed: each rank writes its process id once training runs; with hangRank, that rank stops answering.
static void Endless(string folder, int? hangRank)
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
        })],
    };
    Fit(options, batches);
}

sealed class CountingDataModule(IReadOnlyList<Tensor> batches) : LightningDataModule<Tensor>
{
    public int Prepared { get; private set; }
    public int SetUp { get; private set; }

    public override void PrepareData() => Prepared++;
    public override void Setup(Stage stage) => SetUp++;
    public override IEnumerable<Tensor> TrainDataLoader() => batches;
}
