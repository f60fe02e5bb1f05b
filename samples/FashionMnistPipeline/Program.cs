// Fashion-MNIST through an ML.NET pipeline: MapValueToKey -> Lightning CNN -> MapKeyToValue, compared with ML.NET's own
// SdcaMaximumEntropy and LightGbm on the same IDataView, then saved as model.zip.
// Usage: dotnet run -c Release --project samples/FashionMnistPipeline [-- --epochs N] [--train-rows N]
// (--train-rows: train on the first N training images only, as the smoke test does to finish in seconds)
using System.Diagnostics;
using System.Globalization;
using FashionMnistPipeline;
using Lightning;
using Lightning.Data;
using Lightning.MLNet;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Trainers.LightGbm;

const int DefaultEpochs = 12;
const int BatchSize = 128;
int epochs = DefaultEpochs;
int? trainRows = null;
for (int i = 0; i < args.Length; i += 2)
{
    int value = 0;
    var valid = i + 1 < args.Length && int.TryParse(args[i + 1], NumberStyles.None, CultureInfo.InvariantCulture, out value) && value >= 1;
    if (valid && args[i] == "--epochs") epochs = value;
    else if (valid && args[i] == "--train-rows") trainRows = value;
    else
    {
        Console.Error.WriteLine($"usage: FashionMnistPipeline [--epochs N] [--train-rows N] (N >= 1, default {DefaultEpochs} epochs, every row); got '{string.Join(' ', args)}'");
        return 2;
    }
}

var mlContext = new MLContext(seed: 0);
// A missing dataset is one line with the fix (the exception's message), not a stack trace.
IDataView train, test;
try { (train, test) = (Images.Load(mlContext, train: true), Images.Load(mlContext, train: false)); }
catch (FileNotFoundException missing) { Console.Error.WriteLine($"error: {missing.Message}"); return 1; }
if (trainRows is int rows) train = mlContext.Data.TakeRows(train, rows);
Console.WriteLine($"Fashion-MNIST from {FashionMnist.DefaultRoot}: {train.GetRowCount():N0} training and {test.GetRowCount():N0} test images");

var logs = Directory.CreateTempSubdirectory("fashion-mnist-pipeline-");
var lightningOptions = new LightningTrainerOptions
{
    BatchSize = BatchSize,
    Seed = 1,
    TrainerOptions = new TrainerOptions
    {
        MaxEpochs = epochs, EnableProgressBar = false, EnableModelSummary = false, EnableCheckpointing = false,
        DefaultRootDir = logs.FullName,
        // The fastest layout for this CNN on the CPU (bench: dotnet run -c Release --project bench/Lightning.Benchmarks -- cpu).
        MemoryFormat = "channels_last",
    },
};
var stepsPerEpoch = (train.GetRowCount()!.Value + BatchSize - 1) / BatchSize;
var pipelines = new (string Name, IEstimator<ITransformer> Trainer)[]
{
    ($"Lightning CNN ({epochs} epochs)", mlContext.MulticlassClassification.Trainers.Lightning(() => new FashionCnn(maxLr: 3e-3, epochs * stepsPerEpoch), lightningOptions)),
    ("SdcaMaximumEntropy", mlContext.MulticlassClassification.Trainers.SdcaMaximumEntropy(
        new Microsoft.ML.Trainers.SdcaMaximumEntropyMulticlassTrainer.Options { MaximumNumberOfIterations = 10 })),
    ("LightGbm", mlContext.MulticlassClassification.Trainers.LightGbm(
        new LightGbmMulticlassTrainer.Options { NumberOfIterations = 30, NumberOfLeaves = 31 })),
};

var results = new List<(string Name, MulticlassClassificationMetrics Metrics, TimeSpan Time, TimeSpan Cpu)>();
var process = Process.GetCurrentProcess();
ITransformer? lightningModel = null;
foreach (var (name, trainer) in pipelines)
{
    var pipeline = mlContext.Transforms.Conversion.MapValueToKey("Label")
        .Append(trainer)
        .Append(mlContext.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
    Console.WriteLine($"training {name} ...");
    process.Refresh();
    var cpu = process.TotalProcessorTime;
    var clock = Stopwatch.StartNew();
    var model = pipeline.Fit(train);
    clock.Stop();
    process.Refresh();
    cpu = process.TotalProcessorTime - cpu;
    var metrics = mlContext.MulticlassClassification.Evaluate(model.Transform(test));
    results.Add((name, metrics, clock.Elapsed, cpu));
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {name}: accuracy {metrics.MicroAccuracy:0.0000} in {clock.Elapsed.TotalSeconds:0.0} s"));
    if (lightningModel is null) lightningModel = model;
    else (model as IDisposable)?.Dispose();
}

// Wall time is what a user waits; on a shared machine it grows with the load, so the CPU time the fit used (all
// threads) is shown too: on an idle machine with C cores the wall time would be about CPU time / C.
Console.WriteLine();
Console.WriteLine($"{"trainer",-28} {"accuracy",9} {"macro acc.",11} {"training",10} {"CPU time",10}");
foreach (var (name, metrics, time, cpu) in results)
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"{name,-28} {metrics.MicroAccuracy,9:0.0000} {metrics.MacroAccuracy,11:0.0000} {time.TotalSeconds,8:0.0} s {cpu.TotalSeconds,8:0.0} s"));

// Written beside, flushed and renamed, so an interrupted save never leaves a truncated model.zip for a server to load.
// Portable: the server (samples/ServingApi) loads it with Microsoft.ML and OnnxTransformer alone, without Lightning.MLNet.
var path = Path.GetFullPath("model.zip");
mlContext.Model.SaveDurably(lightningModel!, train.Schema, path, portable: true);
(lightningModel as IDisposable)?.Dispose();
logs.Delete(recursive: true);
Console.WriteLine($"saved {path}");
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Lightning training time: {results[0].Time.TotalSeconds:0.0} s ({results[0].Cpu.TotalSeconds:0.0} s of CPU)"));
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"accuracy: {results[0].Metrics.MicroAccuracy:0.0000}"));
return 0;
