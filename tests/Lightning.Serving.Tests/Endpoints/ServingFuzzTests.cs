using System.Diagnostics;
using System.Net;
using System.Text;
using Google.Protobuf;
using Grpc.Core;
using Grpc.Net.Client;
using Lightning.Serving.OpenInference;
using Lightning.Serving.Tests.Inference;
using Lightning.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace Lightning.Serving.Tests.Endpoints;

/// <summary>
/// Bounded fuzzing of the REST and gRPC inference paths with mutated valid requests (seeded, so a failure replays): no
/// answer may be a 5xx other than 503 (gRPC: Internal, Unknown, DataLoss), the server stays live, and the process's
/// managed heap stays bounded while it runs (the test prints the peaks).
/// </summary>
[Collection(LoadCollection.Name)]
public sealed class ServingFuzzTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const int RestBodies = 20_000;
    private const int GrpcMessages = 5_000;
    private const long MaxBody = 1 << 20;

    private readonly TempDirectory _dir = new();
    private WebApplication _app = null!;
    private HttpClient _http = null!;
    private GrpcChannel _channel = null!;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseKestrel(k =>
        {
            k.Listen(IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http1);
            k.Listen(IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http2);
        });
        builder.Logging.ClearProviders();
        builder.Services.AddOnnxInference(o => o.MaxRequestBodySize = MaxBody)
            .AddModel("linear", OnnxTestModels.Linear(_dir.Combine("linear.onnx")), o =>
            {
                o.WatchForChanges = false;
                o.MaxQueueDelayMicroseconds = 100;
                o.MaxQueueSize = 64;
            })
            .AddModel("embedding", OnnxTestModels.Embedding(_dir.Combine("embedding.onnx")), o => o.WatchForChanges = false)
            .AddModel("two", OnnxGraphs.TwoOutputs(_dir.Combine("two.onnx")), o => o.WatchForChanges = false)
            .AddModel("bytes", OnnxGraphs.Identity(_dir.Combine("bytes.onnx"), "BYTES", 2), o => o.WatchForChanges = false)
            .AddModel("half", OnnxGraphs.Identity(_dir.Combine("half.onnx"), "FP16", 2), o => o.WatchForChanges = false)
            .AddModel("int8", OnnxGraphs.Identity(_dir.Combine("int8.onnx"), "INT8", 2), o => o.WatchForChanges = false);
        _app = builder.Build();
        _app.MapOpenInference();
        _app.MapOpenInferenceGrpc();
        await _app.StartAsync();
        var addresses = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.ToList();
        _http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 8 }) { BaseAddress = new Uri(addresses[0]), Timeout = TimeSpan.FromSeconds(30) };
        _channel = GrpcChannel.ForAddress(addresses[1], new GrpcChannelOptions { MaxSendMessageSize = null });
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        _channel.Dispose();
        await _app.DisposeAsync();
        _dir.Dispose();
    }

    private static readonly string[] RestSeeds =
    [
        """{"id":"a","inputs":[{"name":"input","shape":[2,4],"datatype":"FP32","data":[1,2,3,4,5,6,7,8]}]}""",
        """{"inputs":[{"name":"input","shape":[1,4],"datatype":"FP32","data":[[0.5,-1e3,2.25,3]]}],"outputs":[{"name":"output"}],"parameters":{"timeout":1000000}}""",
        """{"inputs":[{"name":"input","shape":[1,5],"datatype":"INT64","data":[1,2,3,4,9]}]}""",
        """{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP32","data":[1,2]}],"outputs":[{"name":"z","parameters":{"binary_data":true}},{"name":"y"}]}""",
        """{"inputs":[{"name":"x","shape":[2,2],"datatype":"BYTES","data":["a","bc","\u00e9","\ud83d\ude00"]}],"parameters":{"binary_data_output":true}}""",
        """{"inputs":[{"name":"x","shape":[1,2],"datatype":"FP16","data":[1.5,-2]}]}""",
        """{"inputs":[{"name":"x","shape":[1,2],"datatype":"INT8","data":[-128,127]}]}""",
        """{"inputs":[{"data":[1,2,3,4],"datatype":"FP32","shape":[1,4],"name":"input"}]}""",
    ];

    private static readonly string[] Paths =
    [
        "/v2/models/linear/infer", "/v2/models/linear/versions/1/infer", "/v2/models/embedding/infer", "/v2/models/two/infer",
        "/v2/models/bytes/infer", "/v2/models/half/infer", "/v2/models/int8/infer", "/v2/models/linear/versions/9/infer",
    ];

    /// <summary>Tokens that make a mutated body interesting: structure, edge numbers, datatypes, escapes, huge shapes.</summary>
    private static readonly string[] Tokens =
    [
        "{", "}", "[", "]", ",", ":", "\"", "null", "true", "false", "-1", "0", "1e400", "-0", "1.7976931348623157e309", "18446744073709551616",
        "\"\\ud800\"", "\"\\udc00x\"", "\"FP16\"", "\"BF16\"", "\"BYTES\"", "\"BOOL\"", "\"UINT64\"", "\"shape\"", "\"data\"", "\"inputs\"",
        "[4000000000,4000000000]", "[1,99999999]", "{\"binary_data_size\":8}", "{\"timeout\":-1}", "{\"timeout\":0}", "{\"timeout\":1}", "\"parameters\"", "[[[[[[[[[[1]]]]]]]]]]",
    ];

    [Fact]
    public async Task Fuzz_MutatedRestBodiesAndGrpcMessages_NoServerErrorAndBoundedMemory()
    {
        using var sampler = new HeapSampler();
        var random = new Random(19);
        var statuses = new Dictionary<int, int>();
        var failures = new List<string>();
        // Every 200th body is near the 1 MiB limit (valid JSON, 250,000 elements, data before shape for some), to load the parser's memory.
        var big = Encoding.UTF8.GetBytes("{\"inputs\":[{\"name\":\"input\",\"shape\":[62500,4],\"datatype\":\"FP32\",\"data\":[" + string.Join(',', Enumerable.Repeat("1.5", 250_000)) + "]}]}");
        var bigLate = Encoding.UTF8.GetBytes("{\"inputs\":[{\"data\":[" + string.Join(',', Enumerable.Repeat("-2", 300_000)) + "],\"name\":\"input\",\"shape\":[1,4],\"datatype\":\"FP32\"}]}");
        var jobs = Enumerable.Range(0, RestBodies).Select(i => (Path: Paths[random.Next(Paths.Length)],
            Body: i % 200 == 0 ? (i % 400 == 0 ? big : bigLate) : Mutate(random, RestSeeds[random.Next(RestSeeds.Length)]),
            Binary: random.Next(8) == 0 ? random.Next(-2, 200) : (int?)null)).ToList();
        var clock = Stopwatch.StartNew();
        await Parallel.ForEachAsync(jobs, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (job, _) =>
        {
            using var content = new ByteArrayContent(job.Body);
            content.Headers.ContentType = new("application/json");
            if (job.Binary is { } n) content.Headers.TryAddWithoutValidation("Inference-Header-Content-Length", n.ToString());
            using var response = await _http.PostAsync(job.Path, content);
            var status = (int)response.StatusCode;
            lock (statuses)
            {
                statuses[status] = statuses.GetValueOrDefault(status) + 1;
                if (status >= 500 && status != 503 && failures.Count < 5)
                    failures.Add($"{status} for {job.Path}: {Encoding.UTF8.GetString(job.Body)} → {response.Content.ReadAsStringAsync().Result}");
            }
        });
        var restSeconds = clock.Elapsed.TotalSeconds;

        var client = new GRPCInferenceService.GRPCInferenceServiceClient(_channel);
        var codes = new Dictionary<StatusCode, int>();
        var messages = Enumerable.Range(0, GrpcMessages).Select(_ => MutateGrpc(random)).ToList();
        clock.Restart();
        await Parallel.ForEachAsync(messages, new ParallelOptions { MaxDegreeOfParallelism = 8 }, async (message, _) =>
        {
            StatusCode code;
            string detail = "";
            try
            {
                await client.ModelInferAsync(message, deadline: DateTime.UtcNow.AddSeconds(30));
                code = StatusCode.OK;
            }
            catch (RpcException ex)
            {
                code = ex.StatusCode;
                detail = ex.Status.Detail;
            }
            lock (codes)
            {
                codes[code] = codes.GetValueOrDefault(code) + 1;
                if (code is StatusCode.Internal or StatusCode.Unknown or StatusCode.DataLoss && failures.Count < 10)
                    failures.Add($"gRPC {code}: {detail} for {message}");
            }
        });
        var grpcSeconds = clock.Elapsed.TotalSeconds;
        var live = await _http.GetAsync("/v2/health/live");

        output.WriteLine($"REST: {RestBodies} mutated bodies in {restSeconds:0.0} s; statuses {string.Join(", ", statuses.OrderBy(p => p.Key).Select(p => $"{p.Key}: {p.Value}"))}");
        output.WriteLine($"gRPC: {GrpcMessages} mutated messages in {grpcSeconds:0.0} s; codes {string.Join(", ", codes.OrderBy(p => p.Key).Select(p => $"{p.Key}: {p.Value}"))}");
        output.WriteLine($"peak managed heap {sampler.PeakHeapBytes / 1048576.0:0} MiB, peak working set {sampler.PeakWorkingSetBytes / 1048576.0:0} MiB (body limit {MaxBody / 1048576} MiB)");
        Assert.Empty(failures);
        Assert.Equal(RestBodies, statuses.Values.Sum());
        Assert.Equal(GrpcMessages, codes.Values.Sum());
        Assert.True(statuses.GetValueOrDefault(200) > 100, "too few mutated bodies were still valid: the fuzzer no longer reaches the model");
        Assert.True(statuses.GetValueOrDefault(400) > 1000, "too few bodies were rejected: the mutations no longer reach the parser");
        Assert.True(codes.GetValueOrDefault(StatusCode.OK) > 100 && codes.GetValueOrDefault(StatusCode.InvalidArgument) > 100);
        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        // Bodies are at most 1 MiB and at most MaxConcurrentParsing parse at once: the heap stays far below this.
        Assert.True(sampler.PeakHeapBytes < 768L << 20, $"peak managed heap {sampler.PeakHeapBytes} bytes");
    }

    private const string MutationChars = "0123456789[]{},:\"-.e tfnFPINTB\\u";

    private static byte[] Mutate(Random random, string seed)
    {
        var text = new StringBuilder(seed);
        for (int k = random.Next(0, 4); k > 0; k--)
        {
            int at = random.Next(text.Length + 1);
            switch (random.Next(6))
            {
                case 0 when text.Length > 0: text.Remove(Math.Min(at, text.Length - 1), 1 + random.Next(Math.Min(4, text.Length - Math.Min(at, text.Length - 1)))); break;
                case 1: text.Insert(at, Tokens[random.Next(Tokens.Length)]); break;
                case 2 when text.Length > 0: text[Math.Min(at, text.Length - 1)] = MutationChars[random.Next(MutationChars.Length)]; break;
                case 3: text.Length = Math.Min(text.Length, at); break;
                case 4 when at < text.Length: text.Insert(at, text.ToString(at, Math.Min(text.Length - at, random.Next(1, 40)))); break;
                default: text.Insert(at, random.Next(3) == 0 ? "1," : " "); break;
            }
        }
        var bytes = Encoding.UTF8.GetBytes(text.ToString());
        // Now and then a few raw bytes: invalid UTF-8, NULs, and binary tensor data after the JSON.
        if (random.Next(10) == 0)
        {
            var raw = new byte[random.Next(1, 64)];
            random.NextBytes(raw);
            bytes = random.Next(2) == 0 ? [.. bytes, .. raw] : [.. raw, .. bytes];
        }
        return bytes;
    }

    /// <summary>A valid request for one of the models, then zero to three mutations of its fields or of its wire bytes.</summary>
    private static ModelInferRequest MutateGrpc(Random random)
    {
        var request = random.Next(6) switch
        {
            0 => Seed("linear", "FP32", [1, 4], raw: [.. new float[] { 1, 2, 3, 4 }.SelectMany(BitConverter.GetBytes)]),
            1 => Seed("linear", "FP32", [2, 4], contents: c => c.Fp32Contents.AddRange([1, 2, 3, 4, 5, 6, 7, 8])),
            2 => Seed("bytes", "BYTES", [1, 2], contents: c => c.BytesContents.AddRange([ByteString.CopyFromUtf8("a"), ByteString.CopyFrom(0, 255)])),
            3 => Seed("int8", "INT8", [1, 2], raw: [0x80, 0x7f]),
            4 => Seed("embedding", "INT64", [1, 5], contents: c => c.Int64Contents.AddRange([0, 1, 2, 3, 9])),
            _ => Seed("half", "FP16", [1, 2], raw: [0, 0x3c, 0, 0xc0]),
        };
        string[] datatypes = ["FP32", "INT64", "BYTES", "FP16", "INT8", "BF16", "UINT8", "BOOL", "FP64", "", "fp32"];
        for (int k = random.Next(0, 4); k > 0; k--)
        {
            var input = request.Inputs[random.Next(request.Inputs.Count)];
            switch (random.Next(10))
            {
                case 0: request.ModelName = new[] { "linear", "embedding", "nope", "", "bytes" }[random.Next(5)]; break;
                case 1: input.Datatype = datatypes[random.Next(datatypes.Length)]; break;
                case 2 when input.Shape.Count > 0: input.Shape[random.Next(input.Shape.Count)] = new long[] { -1, 0, 3, 4_000_000_000L, 1 }[random.Next(5)]; break;
                case 3 when request.RawInputContents.Count > 0:
                    var raw = request.RawInputContents[0].ToByteArray();
                    request.RawInputContents[0] = ByteString.CopyFrom(raw.AsSpan(0, random.Next(raw.Length + 1)).ToArray().Concat(new byte[random.Next(3)]).ToArray());
                    break;
                case 4: request.Inputs.Add(input.Clone()); break;
                case 5: request.Parameters["timeout"] = random.Next(4) == 0 ? new InferParameter { StringParam = "soon" } : new InferParameter { Int64Param = random.Next(-5, 1_000_000) }; break;
                case 6: request.Outputs.Add(new ModelInferRequest.Types.InferRequestedOutputTensor { Name = random.Next(2) == 0 ? "output" : "nope" }); break;
                case 7: request.ModelVersion = random.Next(3).ToString(); break;
                case 8: input.Name = new[] { "input", "x", "", "\uD800" }[random.Next(4)]; break;
                default:
                    // Flip a byte of the wire form; keep the result when it still parses.
                    var wire = request.ToByteArray();
                    wire[random.Next(wire.Length)] ^= (byte)(1 << random.Next(8));
                    try
                    {
                        request = ModelInferRequest.Parser.ParseFrom(wire);
                    }
                    catch (InvalidProtocolBufferException)
                    {
                    }
                    if (request.Inputs.Count == 0) return request;
                    break;
            }
        }
        return request;
    }

    private static ModelInferRequest Seed(string model, string datatype, long[] shape, byte[]? raw = null, Action<InferTensorContents>? contents = null)
    {
        var request = new ModelInferRequest { ModelName = model, Id = "fuzz" };
        var input = new ModelInferRequest.Types.InferInputTensor { Name = model is "linear" or "embedding" ? "input" : "x", Datatype = datatype };
        input.Shape.AddRange(shape);
        if (raw is not null) request.RawInputContents.Add(ByteString.CopyFrom(raw));
        if (contents is not null)
        {
            input.Contents = new InferTensorContents();
            contents(input.Contents);
        }
        request.Inputs.Add(input);
        return request;
    }

    /// <summary>Samples the managed heap and the working set every few milliseconds and keeps the peaks.</summary>
    private sealed class HeapSampler : IDisposable
    {
        private readonly Timer _timer;

        public HeapSampler() => _timer = new Timer(_ => Sample(), null, 0, 5);

        public long PeakHeapBytes { get; private set; }

        public long PeakWorkingSetBytes { get; private set; }

        private void Sample()
        {
            PeakHeapBytes = Math.Max(PeakHeapBytes, GC.GetTotalMemory(false));
            PeakWorkingSetBytes = Math.Max(PeakWorkingSetBytes, Environment.WorkingSet);
        }

        public void Dispose()
        {
            _timer.Dispose();
            Sample();
        }
    }
}
