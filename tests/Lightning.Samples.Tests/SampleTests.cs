using System.Globalization;
using System.IO.Compression;
using System.Net;
using System.Net.Sockets;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using Lightning.Checkpoints;
using Lightning.Testing;
using Microsoft.ML.OnnxRuntime;

namespace Lightning.Samples.Tests;

/// <summary>
/// The quickstart's and the pipeline's outputs (encoder.onnx, model.zip), made once: the serving sample serves them,
/// as the README's serving section does.
/// </summary>
public sealed class SampleOutputs : IDisposable
{
    private readonly TempDirectory _folder = new();
    private readonly Lazy<Task<string>> _quickStart, _pipeline;

    /// <summary>The pipeline trains on this many images (all 60,000 take minutes here), evaluates on all 10,000 test images.</summary>
    public const int TrainRows = 6000;

    public SampleOutputs()
    {
        _quickStart = new(() => SampleProcess.RunToEnd("QuickStart", Folder, TimeSpan.FromSeconds(120)));
        // OMP_WAIT_POLICY=PASSIVE: LightGbm's OpenMP threads spin beside libtorch's; on a loaded 2-core machine its
        // 30 iterations then took over 80 s instead of about 10 s.
        _pipeline = new(() => SampleProcess.RunToEnd("FashionMnistPipeline", Folder, TimeSpan.FromSeconds(120),
            new Dictionary<string, string> { ["OMP_WAIT_POLICY"] = "PASSIVE" }, "--epochs", "1", "--train-rows", TrainRows.ToString(CultureInfo.InvariantCulture)));
    }

    /// <summary>The working folder both samples ran in.</summary>
    public string Folder => _folder.Path;

    /// <summary>The quickstart's stdout (it wrote a checkpoint, encoder.onnx and TensorBoard logs here).</summary>
    public Task<string> QuickStart => _quickStart.Value;

    /// <summary>The pipeline's stdout with one epoch (it wrote model.zip here).</summary>
    public Task<string> Pipeline => _pipeline.Value;

    public void Dispose() => _folder.Dispose();
}

/// <summary>Every sample run as a user runs it, each with its key output checked; one at a time, as they share the machine.</summary>
[CollectionDefinition(nameof(SampleTests), DisableParallelization = true)]
public sealed class SampleCollection : ICollectionFixture<SampleOutputs>;

[Collection(nameof(SampleTests))]
public sealed class SampleTests(SampleOutputs outputs)
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(120);

    [RequiresFact(Component.FashionMnist)]
    public async Task QuickStart_TrainsSavesACheckpoint_AndItsOnnxEncoderAgreesWithTorchSharp()
    {
        var output = await outputs.QuickStart;

        var checkpoint = Line(output, @"^Checkpoint: (.+\.ckpt)$");
        Assert.True(File.Exists(Path.Combine(outputs.Folder, checkpoint)), $"the checkpoint '{checkpoint}' it printed does not exist");
        Assert.True(File.Exists(Path.Combine(outputs.Folder, "encoder.onnx")));
        // 4 embeddings, then the same 4 from TorchSharp beside ONNX Runtime's
        const string Row = @"[+-]\d\.\d{4}  [+-]\d\.\d{4}  [+-]\d\.\d{4}";
        var embeddings = Regex.Matches(output, $@"^({Row})\r?$", RegexOptions.Multiline).Select(m => m.Groups[1].Value).ToArray();
        var sideBySide = Regex.Matches(output, $@"^({Row}) +({Row})\r?$", RegexOptions.Multiline).Select(m => m.Groups[1].Value).ToArray();
        Assert.Equal(4, embeddings.Length);
        Assert.Equal(embeddings, sideBySide);
        var difference = double.Parse(Line(output, @"^max \|TorchSharp - ONNX Runtime\| = (\S+)$"), CultureInfo.InvariantCulture);
        Assert.InRange(difference, 0, 1e-4);
        var logs = Line(output, @"^TensorBoard logs: (.+)$");
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(outputs.Folder, logs), "events.out.tfevents.*"));
    }

    [RequiresFact(Component.FashionMnist)]
    public async Task QuickStartCli_Fit_WithDottedOverrides_TrainsThoseBatchesAndWritesTheCheckpoint()
    {
        using var folder = new TempDirectory();
        var config = Path.Combine(SampleProcess.RepositoryRoot, "samples", "QuickStartCli", "config.yaml");

        var output = await SampleProcess.RunToEnd("QuickStartCli", folder.Path, s_timeout,
            "fit", "--config", config, "--trainer.limit_train_batches=7", "--trainer.limit_val_batches=2", "--model.latent_dim=4");

        var done = Regex.Match(output, @"^fit done: (\d+) epochs, (\d+) steps; checkpoint (.+\.ckpt)\r?$", RegexOptions.Multiline);
        Assert.True(done.Success, output);
        Assert.Equal("1", done.Groups[1].Value);
        Assert.Equal("7", done.Groups[2].Value);   // the override, not config.yaml's 100
        var checkpoint = Path.Combine(folder.Path, done.Groups[3].Value);
        Assert.True(File.Exists(checkpoint), $"'{checkpoint}' does not exist");
        var saved = Checkpoint.Load(checkpoint);
        Assert.Equal(7, saved.GlobalStep);
        Assert.Equal(4, saved.Hyperparameters["latentDim"].GetInt32());   // --model.latent_dim reached the model
        Assert.Equal(64, saved.Hyperparameters["hiddenDim"].GetInt32());  // config.yaml's value where nothing overrides it
    }

    [RequiresFact(Component.FashionMnist)]
    public async Task FabricLoop_Trains300Steps_SavesItsCheckpoint_AndLearns()
    {
        using var folder = new TempDirectory();

        var output = await SampleProcess.RunToEnd("FabricLoop", folder.Path, s_timeout);

        Assert.Equal(["step 100", "step 200", "step 300"], Regex.Matches(output, @"^(step \d+): loss \d+\.\d{4}\r?$", RegexOptions.Multiline).Select(m => m.Groups[1].Value));
        var accuracy = double.Parse(Line(output, @"^test accuracy after 300 steps: (\d\.\d{4})$"), CultureInfo.InvariantCulture);
        Assert.InRange(accuracy, 0.6, 1.0);   // chance is 0.1; 300 Adam steps of an MLP reach about 0.8
        Assert.True(new FileInfo(Path.Combine(folder.Path, "fabric.ckpt")).Length > 0);
    }

    [RequiresFact(Component.FashionMnist)]
    public async Task FashionMnistPipeline_OneEpochOnAFewRows_BeatsChance_AndSavesModelZip()
    {
        var output = await outputs.Pipeline;

        Assert.Equal($"{SampleOutputs.TrainRows:N0} training and 10,000 test images", Line(output, @"^Fashion-MNIST from .+: (.+)$"));
        var accuracy = double.Parse(Line(output, @"^accuracy: (\d\.\d{4})$"), CultureInfo.InvariantCulture);
        Assert.InRange(accuracy, 0.6, 1.0);   // chance is 0.1
        var saved = Line(output, @"^saved (.+)$");
        Assert.Equal(Path.Combine(outputs.Folder, "model.zip"), saved);
        using var zip = ZipFile.OpenRead(saved);   // a whole ML.NET model, not a truncated file
        Assert.NotEmpty(zip.Entries);
    }

    [RequiresFact(Component.FashionMnist)]
    public async Task ServingApi_AnswersTheReadmeRequests()
    {
        await outputs.QuickStart;
        await outputs.Pipeline;
        var requests = Path.Combine(SampleProcess.RepositoryRoot, "samples", "ServingApi", "requests");
        var (rest, grpc) = (FreePort(), FreePort());
        using var server = SampleProcess.Start("ServingApi", outputs.Folder,
            [$"--Kestrel:Endpoints:Rest:Url=http://127.0.0.1:{rest}", $"--Kestrel:Endpoints:Grpc:Url=http://127.0.0.1:{grpc}"],
            startedLine: "Application started");
        await server.WaitStarted(s_timeout);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{rest}") };

        // /predict: the pipeline's model names test image 9 by its label in the dataset.
        using var predict = await http.PostAsync("/predict", JsonBody(Path.Combine(requests, "sneaker.json")));
        Assert.Equal(HttpStatusCode.OK, predict.StatusCode);
        using var prediction = JsonDocument.Parse(await predict.Content.ReadAsStringAsync());
        Assert.Equal(ClassOfTestImage(9), prediction.RootElement.GetProperty("predictedLabel").GetString());
        var scores = prediction.RootElement.GetProperty("score").EnumerateArray().Select(s => s.GetSingle()).ToArray();
        Assert.Equal(10, scores.Length);
        Assert.Equal(1.0, scores.Sum(), 3);

        // v2 JSON: the encoder's embedding equals ONNX Runtime's on the same file and pixels.
        var pixels = JsonDocument.Parse(File.ReadAllText(Path.Combine(requests, "encoder-infer.json"))).RootElement
            .GetProperty("inputs")[0].GetProperty("data").EnumerateArray().Select(v => v.GetSingle()).ToArray();
        var expected = Encode(Path.Combine(outputs.Folder, "encoder.onnx"), pixels);
        using var infer = await http.PostAsync("/v2/models/encoder/infer", JsonBody(Path.Combine(requests, "encoder-infer.json")));
        Assert.Equal(HttpStatusCode.OK, infer.StatusCode);
        using var answer = JsonDocument.Parse(await infer.Content.ReadAsStringAsync());
        Assert.Equal("encoder", answer.RootElement.GetProperty("model_name").GetString());
        Assert.Equal("sneaker-9", answer.RootElement.GetProperty("id").GetString());
        var outputTensor = answer.RootElement.GetProperty("outputs")[0];
        Assert.Equal([1, 3], outputTensor.GetProperty("shape").EnumerateArray().Select(d => d.GetInt32()));
        Assert.Equal("FP32", outputTensor.GetProperty("datatype").GetString());
        Approx.AssertClose(expected, outputTensor.GetProperty("data").EnumerateArray().Select(v => v.GetSingle()).ToArray());

        // /v2: the server's metadata.
        using var metadata = JsonDocument.Parse(await http.GetStringAsync("/v2"));
        Assert.Equal("lightning-serving", metadata.RootElement.GetProperty("name").GetString());
        Assert.Contains("binary_tensor_data", metadata.RootElement.GetProperty("extensions").EnumerateArray().Select(e => e.GetString()));

        // The binary extension: a 183-byte JSON header, then little-endian FP32; the answer's header length is in its header.
        using var binaryBody = new ByteArrayContent(File.ReadAllBytes(Path.Combine(requests, "encoder-infer.bin")));
        binaryBody.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        binaryBody.Headers.Add("Inference-Header-Content-Length", "183");
        using var binary = await http.PostAsync("/v2/models/encoder/versions/1/infer", binaryBody);
        Assert.Equal(HttpStatusCode.OK, binary.StatusCode);
        var headerLength = int.Parse(binary.Headers.TryGetValues("Inference-Header-Content-Length", out var values) ? values.Single()
            : binary.Content.Headers.GetValues("Inference-Header-Content-Length").Single(), CultureInfo.InvariantCulture);
        var bytes = await binary.Content.ReadAsByteArrayAsync();
        Assert.Equal(headerLength + 3 * sizeof(float), bytes.Length);
        using var header = JsonDocument.Parse(Encoding.UTF8.GetString(bytes, 0, headerLength));
        Assert.Equal(12, header.RootElement.GetProperty("outputs")[0].GetProperty("parameters").GetProperty("binary_data_size").GetInt32());
        var binaryFloats = new float[3];
        Buffer.BlockCopy(bytes, headerLength, binaryFloats, 0, 12);
        Approx.AssertClose(expected, binaryFloats);
    }

    [RequiresFact(Component.Mpich, Component.FashionMnist)]
    public async Task DdpFashionMnist_TwoRanksUnderMpiexec_TrainTheLimitAndRankZeroWritesTheCheckpoint()
    {
        using var folder = new TempDirectory();

        var output = await SampleProcess.RunUnderMpiexec(2, "DdpFashionMnist", folder.Path, s_timeout, "--limit-train-batches", "20");

        var summary = Regex.Match(output, @"^ddp: 2 ranks, (\d+) steps of 2 x 64 images; val_loss (\d+\.\d{4}), val_acc (\d\.\d{4})\r?$", RegexOptions.Multiline);
        Assert.True(summary.Success, output);
        Assert.Single(Regex.Matches(output, "^ddp: ", RegexOptions.Multiline));   // rank 0 alone prints
        Assert.Equal("20", summary.Groups[1].Value);
        Assert.InRange(double.Parse(summary.Groups[3].Value, CultureInfo.InvariantCulture), 0.3, 1.0);   // chance is 0.1
        var checkpoint = Line(output, @"^checkpoint: (.+\.ckpt)$");
        Assert.True(File.Exists(Path.Combine(folder.Path, checkpoint)), $"'{checkpoint}' does not exist");
    }

    private static string Line(string output, string pattern)
    {
        var match = Regex.Match(output, pattern.Replace("$", @"\r?$", StringComparison.Ordinal), RegexOptions.Multiline);
        Assert.True(match.Success, $"no line matching {pattern} in:\n{output}");
        return match.Groups[1].Value;
    }

    private static StringContent JsonBody(string path) => new(File.ReadAllText(path), Encoding.UTF8, "application/json");

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    // The class name of a test image, from the dataset's own label file (not from the samples).
    private static string ClassOfTestImage(int index)
    {
        using var file = new GZipStream(File.OpenRead("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz"), CompressionMode.Decompress);
        var labels = new byte[8 + index + 1];
        file.ReadExactly(labels);
        string[] names = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];
        return names[labels[8 + index]];
    }

    private static float[] Encode(string model, float[] pixels)
    {
        using var session = new InferenceSession(model);
        using var input = OrtValue.CreateTensorValueFromMemory(pixels, [1, pixels.Length]);
        using var runOptions = new RunOptions();
        using var results = session.Run(runOptions, session.InputNames, [input], session.OutputNames);
        return results[0].GetTensorDataAsSpan<float>().ToArray();
    }
}
