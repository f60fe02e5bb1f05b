// Fashion-MNIST with a small transformer that reads each image as a sequence of 28 rows, trained in an ML.NET pipeline
// (MapValueToKey -> Lightning trainer -> MapKeyToValue), saved as model.zip, exported to ONNX and served by the Open
// Inference Protocol (v2) endpoint, started in-process on 127.0.0.1.
// Usage: dotnet run -c Release --project samples/FashionMnistTransformer [-- --epochs N]
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using FashionMnistPipeline;
using FashionMnistTransformer;
using Lightning;
using Lightning.Data;
using Lightning.MLNet;
using Lightning.Onnx;
using Lightning.Serving;
using Microsoft.ML;
using Microsoft.ML.Data;
using static TorchSharp.torch;

const int DefaultEpochs = 6;
const int BatchSize = 128;
const int ServedImages = 8;
int epochs = DefaultEpochs;
if (!(args is [] || (args is ["--epochs", var e] && int.TryParse(e, NumberStyles.None, CultureInfo.InvariantCulture, out epochs) && epochs >= 1)))
{
    Console.Error.WriteLine($"usage: FashionMnistTransformer [--epochs N] (N >= 1, default {DefaultEpochs}); got '{string.Join(' ', args)}'");
    return 2;
}

var mlContext = new MLContext(seed: 0);
// A missing dataset is one line with the fix (the exception's message), not a stack trace.
IDataView train, test;
try { (train, test) = (Images.Load(mlContext, train: true), Images.Load(mlContext, train: false)); }
catch (FileNotFoundException missing) { Console.Error.WriteLine($"error: {missing.Message}"); return 1; }
Console.WriteLine($"Fashion-MNIST from {FashionMnist.DefaultRoot}: {train.GetRowCount():N0} training and {test.GetRowCount():N0} test images");
// Training progress (each epoch's step and loss) comes through the context's log.
mlContext.Log += (_, log) =>
{
    if (log.Source.StartsWith("Lightning", StringComparison.Ordinal) && log.RawMessage.StartsWith("epoch", StringComparison.Ordinal))
        Console.WriteLine($"  {log.RawMessage}");
};

var logs = Directory.CreateTempSubdirectory("fashion-mnist-transformer-");
var stepsPerEpoch = (train.GetRowCount()!.Value + BatchSize - 1) / BatchSize;
var trainer = mlContext.MulticlassClassification.Trainers.Lightning(
    () => new RowTransformer(width: 48, heads: 4, feedForward: 96, layers: 2, maxLr: 2e-3, totalSteps: epochs * stepsPerEpoch),
    new LightningTrainerOptions
    {
        BatchSize = BatchSize,
        Seed = 1,
        TrainerOptions = new TrainerOptions
        {
            MaxEpochs = epochs, EnableProgressBar = false, EnableModelSummary = false, EnableCheckpointing = false,
            DefaultRootDir = logs.FullName,
        },
    });
var pipeline = mlContext.Transforms.Conversion.MapValueToKey("Label")
    .Append(trainer)
    .Append(mlContext.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
Console.WriteLine($"training the row transformer ({epochs} epochs of {stepsPerEpoch} batches) ...");
var clock = System.Diagnostics.Stopwatch.StartNew();
using var model = pipeline.Fit(train);
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"trained in {clock.Elapsed.TotalSeconds:0.0} s"));

// Accuracy on the 10,000 test images, by ML.NET's evaluator on the model's own outputs (ONNX Runtime scores them).
var scored = model.Transform(test);
var metrics = mlContext.MulticlassClassification.Evaluate(scored);
var onnxScores = scored.GetColumn<VBuffer<float>>("Score").Select(v => v.DenseValues().ToArray()).ToArray();

// The same images through TorchSharp: the largest difference from ONNX Runtime's class probabilities.
var lightning = model.OfType<LightningTransformer>().Single();
var module = (RowTransformer)lightning.Module;
module.eval();
var pixels = test.GetColumn<float[]>("Features").SelectMany(f => f).ToArray();
float largestDifference = 0;
using (no_grad())
using (var images = tensor(pixels, [onnxScores.Length, Images.PixelCount]))
{
    for (int start = 0; start < onnxScores.Length; start += 1000)
    {
        using var scope = NewDisposeScope();
        var probabilities = nn.functional.softmax(module.forward(images.narrow(0, start, 1000)), 1).data<float>().ToArray();
        for (int i = 0; i < probabilities.Length; i++)
            largestDifference = Math.Max(largestDifference, Math.Abs(probabilities[i] - onnxScores[start + i / 10][i % 10]));
    }
}
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"largest ONNX Runtime/TorchSharp difference (class probabilities, 10k test images): {largestDifference:E2}"));

// model.zip, written beside, flushed and renamed, so an interrupted save never leaves a truncated file; loading it
// needs Lightning.MLNet registered (mlContext.ComponentCatalog.RegisterAssembly), as its scalar outputs are ours.
var modelPath = Path.GetFullPath("model.zip");
mlContext.Model.SaveDurably(model, train.Schema, modelPath);
Console.WriteLine($"saved {modelPath}");

// The module exported with a batch axis, served by the v2 endpoint, and a few test images sent through it.
var onnxPath = Path.Combine(logs.FullName, "fashion-transformer.onnx");
using (var sample = zeros(1, Images.PixelCount))
    module.ToOnnx(onnxPath, sample, new OnnxExportOptions
    {
        InputNames = ["input"], OutputNames = ["logits"],
        DynamicAxes = new Dictionary<string, IReadOnlyDictionary<int, string>> { ["input"] = new Dictionary<int, string> { [0] = "batch" } },
    });
var served = await Serve(onnxPath, pixels.AsMemory(0, ServedImages * Images.PixelCount), ServedImages);
float servedDifference = 0;
int sameLabels = 0;
for (int i = 0; i < ServedImages; i++)
{
    var logits = served.AsSpan(i * 10, 10);
    var max = logits.ToArray().Max();
    var exp = logits.ToArray().Select(l => MathF.Exp(l - max)).ToArray();
    for (int k = 0; k < 10; k++) servedDifference = Math.Max(servedDifference, Math.Abs(exp[k] / exp.Sum() - onnxScores[i][k]));
    // Both in the order of the pipeline's label keys.
    if (Array.IndexOf(exp, exp.Max()) == Array.IndexOf(onnxScores[i], onnxScores[i].Max())) sameLabels++;
}
Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
    $"served by POST /v2/models/fashion/infer: {ServedImages} test images, {sameLabels} with the in-process class, largest probability difference {servedDifference:E2}"));

logs.Delete(recursive: true);
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"accuracy: {metrics.MicroAccuracy:0.0000}"));
return 0;

// Starts the v2 endpoint on a free port of 127.0.0.1 with the ONNX model as "fashion", sends one request with the
// images, and returns the "logits" output (row-major [images, 10]).
static async Task<float[]> Serve(string onnxPath, ReadOnlyMemory<float> images, int count)
{
    var builder = WebApplication.CreateSlimBuilder();
    builder.Logging.SetMinimumLevel(LogLevel.Warning);
    builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
    builder.Services.AddOnnxInference().AddModel("fashion", onnxPath);
    await using var app = builder.Build();
    app.MapOpenInference();
    await app.StartAsync();
    try
    {
        // The port Kestrel picked.
        var address = app.Urls.First();
        using var client = new HttpClient { BaseAddress = new Uri(address) };
        var request = new JsonObject
        {
            ["inputs"] = new JsonArray(new JsonObject
            {
                ["name"] = "input", ["shape"] = new JsonArray(count, Images.PixelCount), ["datatype"] = "FP32",
                ["data"] = new JsonArray([.. images.ToArray().Select(p => (JsonNode)p)]),
            }),
        };
        using var response = await client.PostAsJsonAsync("/v2/models/fashion/infer", request);
        var body = await response.Content.ReadFromJsonAsync<JsonObject>();
        if (!response.IsSuccessStatusCode || body is null)
            throw new InvalidOperationException($"POST /v2/models/fashion/infer answered {(int)response.StatusCode}: {body}");
        var output = body["outputs"]!.AsArray().Single(o => (string?)o!["name"] == "logits")!;
        return [.. output["data"]!.AsArray().Select(v => v!.GetValue<float>())];
    }
    finally
    {
        await app.StopAsync();
    }
}
