// Serves two models on one ASP.NET app:
//   POST /predict                      the pipeline sample's model.zip (ML.NET) through PredictionEnginePool + MapPredict
//   POST /v2/models/encoder/infer      the quickstart's encoder.onnx through the Open Inference Protocol (v2), REST on
//                                      http://127.0.0.1:5000 and gRPC (inference.GRPCInferenceService) on http://127.0.0.1:5001
//   /v2/repository/...                 with --Models:Repository=<folder>, a Triton-style model repository beside it
// Run from the repository root after making the two files:
//   dotnet run --project samples/FashionMnistPipeline    (writes model.zip)
//   dotnet run --project samples/QuickStart              (writes encoder.onnx)
//   dotnet run --project samples/ServingApi
// The ports are in appsettings.json ("Kestrel:Endpoints"): gRPC without TLS needs an HTTP/2-only endpoint.
using Lightning.Serving;
using System.Text.Json.Serialization;
using Microsoft.ML.Data;

// appsettings.json sits next to the binary, so the app finds it from any working directory; the model paths in it are
// relative to the working directory, like the files the other samples write.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
var fashionModel = ModelFile("Models:Fashion", "dotnet run --project samples/FashionMnistPipeline");
var encoderModel = ModelFile("Models:Encoder", "dotnet run --project samples/QuickStart");
if (fashionModel is null || encoderModel is null) return 1;

// watchForChanges: rerunning the pipeline sample swaps in the new model.zip without dropping requests.
builder.Services.AddPredictionEnginePool<FashionInput, FashionPrediction>().FromFile(fashionModel, watchForChanges: true);
var inference = builder.Services.AddOnnxInference().AddModel("encoder", encoderModel, o => builder.Configuration.GetSection("Models:EncoderOptions").Bind(o));
// models/<name>/<version>/model.onnx (+ optional models/<name>/config.json); README, "Model repository".
if (builder.Configuration["Models:Repository"] is { Length: > 0 } repository) inference.AddModelRepository(Path.GetFullPath(repository));

var app = builder.Build();
app.MapPredict<FashionInput, FashionPrediction>("/predict");
app.MapOpenInference();
app.MapOpenInferenceGrpc();
app.Run();
return 0;

// The full path of a model file, or null (with the command that makes it on stderr) when it does not exist.
string? ModelFile(string key, string makeIt)
{
    var path = Path.GetFullPath(builder.Configuration[key] ?? throw new InvalidOperationException($"appsettings.json has no '{key}'."));
    if (File.Exists(path)) return path;
    Console.Error.WriteLine($"ServingApi: the model file '{path}' ({key}) does not exist. Make it with '{makeIt}' from the same directory, " +
        $"or give its path with --{key}=<path>.");
    return null;
}

/// <summary>One Fashion-MNIST image, as the pipeline sample's model.zip takes it: 28×28 pixels scaled to [0, 1], row-major.</summary>
public sealed class FashionInput
{
    /// <summary>The class name; the model ignores it when predicting.</summary>
    public string Label { get; set; } = "";

    /// <summary>The 784 pixels.</summary>
    [VectorType(784)]
    public float[] Features { get; set; } = [];
}

/// <summary>The predicted class name and the score of every class.</summary>
public sealed class FashionPrediction
{
    /// <summary>
    /// The model's <c>PredictedLabel</c> column: a one-slot vector, because OnnxTransformer cannot produce scalars
    /// (Lightning.MLNet's README section); the JSON answer shows its one value as <see cref="PredictedLabel"/>.
    /// </summary>
    [ColumnName("PredictedLabel"), JsonIgnore]
    public string[] PredictedLabelSlots { get; set; } = [];

    /// <summary>The class name with the highest score.</summary>
    [NoColumn]
    public string PredictedLabel => PredictedLabelSlots.FirstOrDefault() ?? "";

    /// <summary>One score per class, in the order of the model's label keys.</summary>
    public float[] Score { get; set; } = [];
}
