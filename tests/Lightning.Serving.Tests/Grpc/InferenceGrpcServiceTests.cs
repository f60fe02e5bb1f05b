using System.Net;
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

namespace Lightning.Serving.Tests.Grpc;

/// <summary>The gRPC service through Grpc.Net.Client against Kestrel on 127.0.0.1 over HTTP/2, beside the REST routes of the same app.</summary>
public sealed class InferenceGrpcServiceTests : IAsyncLifetime
{
    private readonly TempDirectory _dir = new();
    private WebApplication _app = null!;
    private GrpcChannel _channel = null!;
    private GRPCInferenceService.GRPCInferenceServiceClient _client = null!;
    private string _linear = "";

    public async Task InitializeAsync()
    {
        _linear = OnnxTestModels.Linear(_dir.Combine("linear.onnx"));
        var builder = WebApplication.CreateSlimBuilder();
        // Plain-text HTTP/2 (h2c) on one port, as gRPC needs without TLS.
        builder.WebHost.UseKestrel(k => k.Listen(IPAddress.Loopback, 0, l => l.Protocols = HttpProtocols.Http2));
        builder.Logging.ClearProviders();
        builder.Services.AddOnnxInference()
            .AddModel("linear", _linear, o => o.WatchForChanges = false)
            .AddModel("bytes", OnnxGraphs.Identity(_dir.Combine("bytes.onnx"), "BYTES", 2), o => o.WatchForChanges = false)
            .AddModel("int8", OnnxGraphs.Identity(_dir.Combine("int8.onnx"), "INT8", 2), o => o.WatchForChanges = false);
        _app = builder.Build();
        _app.MapOpenInference();
        _app.MapOpenInferenceGrpc();
        await _app.StartAsync();
        var address = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        _channel = GrpcChannel.ForAddress(address);
        _client = new GRPCInferenceService.GRPCInferenceServiceClient(_channel);
    }

    public async Task DisposeAsync()
    {
        _channel.Dispose();
        await _app.DisposeAsync();
        _dir.Dispose();
    }

    [Fact]
    public async Task ServerLiveAndReady_Running_AreTrue()
    {
        Assert.True((await _client.ServerLiveAsync(new ServerLiveRequest())).Live);
        Assert.True((await _client.ServerReadyAsync(new ServerReadyRequest())).Ready);
        Assert.True((await _client.ModelReadyAsync(new ModelReadyRequest { Name = "linear" })).Ready);
        Assert.True((await _client.ModelReadyAsync(new ModelReadyRequest { Name = "linear", Version = "1" })).Ready);
    }

    [Fact]
    public async Task ServerMetadata_ListsTheExtensions()
    {
        var metadata = await _client.ServerMetadataAsync(new ServerMetadataRequest());

        Assert.Equal("lightning-serving", metadata.Name);
        Assert.Contains("binary_tensor_data", metadata.Extensions);
    }

    [Fact]
    public async Task ModelMetadata_Linear_ReportsTheSignature()
    {
        var metadata = await _client.ModelMetadataAsync(new ModelMetadataRequest { Name = "linear" });

        Assert.Equal("onnx_onnxv1", metadata.Platform);
        Assert.Equal(["1"], metadata.Versions);
        var input = Assert.Single(metadata.Inputs);
        Assert.Equal(("input", "FP32"), (input.Name, input.Datatype));
        Assert.Equal([-1L, 4L], input.Shape);
    }

    [Fact]
    public async Task ModelInfer_RawInputContents_MatchesOnnxRuntimeAndTheRestAnswer()
    {
        float[] data = [0.5f, -1, 2, 3, 4, -5, 6, 7.25f];
        var request = new ModelInferRequest { ModelName = "linear", Id = "g1" };
        var input = new ModelInferRequest.Types.InferInputTensor { Name = "input", Datatype = "FP32" };
        input.Shape.AddRange([2, 4]);
        request.Inputs.Add(input);
        request.RawInputContents.Add(ByteString.CopyFrom(data.SelectMany(BitConverter.GetBytes).ToArray()));

        var response = await _client.ModelInferAsync(request);

        Assert.Equal(("linear", "1", "g1"), (response.ModelName, response.ModelVersion, response.Id));
        var output = Assert.Single(response.Outputs);
        Assert.Equal([2L, 3L], output.Shape);
        var raw = response.RawOutputContents.Single().ToByteArray();
        var values = Enumerable.Range(0, raw.Length / 4).Select(i => BitConverter.ToSingle(raw, i * 4)).ToArray();
        Approx.AssertClose(OnnxTestModels.Reference(_linear, data, [2, 4]), values);
    }

    [Fact]
    public async Task ModelInfer_TypedContents_Fp32AndBytes()
    {
        var request = new ModelInferRequest { ModelName = "bytes" };
        var input = new ModelInferRequest.Types.InferInputTensor { Name = "x", Datatype = "BYTES", Contents = new InferTensorContents() };
        input.Shape.AddRange([1, 2]);
        input.Contents.BytesContents.Add(ByteString.CopyFromUtf8("héllo"));
        input.Contents.BytesContents.Add(ByteString.CopyFrom(0, 255));
        request.Inputs.Add(input);

        var response = await _client.ModelInferAsync(request);

        var raw = response.RawOutputContents.Single().ToByteArray();
        byte[] expected = [6, 0, 0, 0, .. "héllo"u8, 2, 0, 0, 0, 0, 255];
        Assert.Equal(expected, raw);
    }

    [Fact]
    public async Task ModelInfer_UnknownModel_IsNotFound()
    {
        var error = await Assert.ThrowsAsync<RpcException>(() => _client.ModelInferAsync(new ModelInferRequest { ModelName = "nope" }).ResponseAsync);

        Assert.Equal(StatusCode.NotFound, error.StatusCode);
        Assert.Contains("model 'nope' is not found", error.Status.Detail);
    }

    [Fact]
    public async Task ModelReady_UnknownVersion_IsNotFound()
    {
        var error = await Assert.ThrowsAsync<RpcException>(() => _client.ModelReadyAsync(new ModelReadyRequest { Name = "linear", Version = "3" }).ResponseAsync);

        Assert.Equal(StatusCode.NotFound, error.StatusCode);
        Assert.Contains("has no version '3'", error.Status.Detail);
    }

    [Fact]
    public async Task ModelInfer_RawSizeMismatch_IsInvalidArgumentNamingTheInput()
    {
        var request = new ModelInferRequest { ModelName = "linear" };
        var input = new ModelInferRequest.Types.InferInputTensor { Name = "input", Datatype = "FP32" };
        input.Shape.AddRange([1, 4]);
        request.Inputs.Add(input);
        request.RawInputContents.Add(ByteString.CopyFrom(new byte[12]));

        var error = await Assert.ThrowsAsync<RpcException>(() => _client.ModelInferAsync(request).ResponseAsync);

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("input byte size mismatch for input 'input'", error.Status.Detail);
    }

    [Fact]
    public async Task ModelInfer_Int8OutOfRange_IsInvalidArgument()
    {
        var request = new ModelInferRequest { ModelName = "int8" };
        var input = new ModelInferRequest.Types.InferInputTensor { Name = "x", Datatype = "INT8", Contents = new InferTensorContents() };
        input.Shape.AddRange([1, 2]);
        input.Contents.IntContents.AddRange([1, 300]);
        request.Inputs.Add(input);

        var error = await Assert.ThrowsAsync<RpcException>(() => _client.ModelInferAsync(request).ResponseAsync);

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("element 1 of int_contents is 300, outside INT8's range", error.Status.Detail);
    }

    [Fact]
    public async Task ModelInfer_WrongShape_IsInvalidArgumentWithTheRestMessage()
    {
        var request = new ModelInferRequest { ModelName = "linear" };
        var input = new ModelInferRequest.Types.InferInputTensor { Name = "input", Datatype = "FP32", Contents = new InferTensorContents() };
        input.Shape.AddRange([1, 3]);
        input.Contents.Fp32Contents.AddRange([1, 2, 3]);
        request.Inputs.Add(input);

        var error = await Assert.ThrowsAsync<RpcException>(() => _client.ModelInferAsync(request).ResponseAsync);

        Assert.Equal(StatusCode.InvalidArgument, error.StatusCode);
        Assert.Contains("expects shape [-1, 4]", error.Status.Detail);
    }

    [Fact]
    public async Task ModelInfer_TimeoutExpiresWhileQueued_IsUnavailableAndDroppedUnrun()
    {
        var model = _app.Services.GetRequiredService<OnnxModelRegistry>().TryGet("linear", out var m) ? m : throw new InvalidOperationException();
        var gate = new TaskCompletionSource();
        model.RunGate = gate.Task;
        long runsBefore = model.RunCount;
        var request = new ModelInferRequest { ModelName = "linear" };
        request.Parameters["timeout"] = new InferParameter { Int64Param = 50_000 };
        var input = new ModelInferRequest.Types.InferInputTensor { Name = "input", Datatype = "FP32", Contents = new InferTensorContents() };
        input.Shape.AddRange([1, 4]);
        input.Contents.Fp32Contents.AddRange([1, 2, 3, 4]);
        request.Inputs.Add(input);

        var error = await Assert.ThrowsAsync<RpcException>(() => _client.ModelInferAsync(request).ResponseAsync);
        model.RunGate = null;
        gate.SetResult();

        Assert.Equal(StatusCode.Unavailable, error.StatusCode);
        Assert.Contains("request timeout expired", error.Status.Detail);
        await Wait.UntilAsync(() => model.Dropped >= 1, "the expired request to be dropped");
        Assert.Equal(1, model.Dropped);
        Assert.Equal(runsBefore, model.RunCount);
    }
}
