// The Fashion-MNIST CNN trained with strategy "ddp": one process per rank on MPI, each on its shard of the data.
//   mpiexec -n 2 dotnet run --project samples/DdpFashionMnist
//   dotnet run --project samples/DdpFashionMnist        (the trainer relaunches the program under mpiexec -n 2)
//   ... -- --limit-train-batches N                      (N training batches per rank instead of 300; the smoke test's short run)
using System.Globalization;
using DdpFashionMnist;
using Lightning;
using Lightning.Data;
using TorchSharp;

const int DefaultTrainBatches = 300;
int trainBatches = DefaultTrainBatches;
if (!(args is [] || (args is ["--limit-train-batches", var n] && int.TryParse(n, NumberStyles.None, CultureInfo.InvariantCulture, out trainBatches) && trainBatches >= 1)))
{
    Console.Error.WriteLine($"usage: DdpFashionMnist [--limit-train-batches N] (N >= 1, default {DefaultTrainBatches}); got '{string.Join(' ', args)}'");
    return 2;
}

// The trainer comes first: without mpiexec it relaunches this program under it here, before any data is loaded.
var trainer = new Trainer(new TrainerOptions
{
    Strategy = "ddp", Devices = 2, Accelerator = "cpu", MaxEpochs = 1, LimitTrainBatches = trainBatches, LimitValBatches = 5,
    NumSanityValSteps = 0, LogEveryNSteps = 25, DefaultRootDir = "ddp_runs",
});
LightningSeed.SeedEverything(42);

// A missing dataset is one line with the fix (the exception's message), not a stack trace.
FashionMnist train, test;
try { (train, test) = (new FashionMnist(train: true), new FashionMnist(train: false)); }
catch (FileNotFoundException e) { Console.Error.WriteLine($"error: {e.Message}"); return 1; }
using var _ = train;
using var __ = test;
// Each rank gets its own shard: the trainer swaps in a distributed sampler (shuffled per epoch with the seed).
using var trainLoader = torch.utils.data.DataLoader(train, 64, shuffle: true, disposeDataset: false);
using var valLoader = torch.utils.data.DataLoader(test, 500, shuffle: false, disposeDataset: false);

var model = new FashionCnn();
trainer.Fit(model, trainLoader, valLoader);

// Every rank holds the same weights and the synced metrics; rank 0 alone writes logs and the checkpoint.
if (trainer.IsGlobalZero)
{
    var metrics = trainer.CallbackMetrics;
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"ddp: {trainer.WorldSize} ranks, {trainer.GlobalStep} steps of {trainer.WorldSize} x 64 images; val_loss {metrics["val_loss"]:0.0000}, val_acc {metrics["val_acc"]:0.0000}"));
    Console.WriteLine($"checkpoint: {Path.GetRelativePath(Directory.GetCurrentDirectory(), trainer.CheckpointCallback!.BestModelPath!)}");
    Console.WriteLine($"logs: {Path.GetRelativePath(Directory.GetCurrentDirectory(), trainer.LogDir!)}");
}
return 0;
