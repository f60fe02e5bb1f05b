using Google.Protobuf;
using Grpc.Core;
using Lightning.Serving.OpenInference;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Lightning.Serving;

/// <summary>
/// KServe's <c>inference.GRPCInferenceService</c> over the same models, batchers and validation as the REST routes.
/// Errors carry the REST messages with the matching status: 400 → InvalidArgument, 404 → NotFound, 503 → Unavailable.
/// Outputs always go back as <c>raw_output_contents</c>, as Triton answers.
/// </summary>
internal sealed class InferenceGrpcService(OnnxModelRegistry registry) : GRPCInferenceService.GRPCInferenceServiceBase
{
    public override Task<ServerLiveResponse> ServerLive(ServerLiveRequest request, ServerCallContext context) =>
        Task.FromResult(new ServerLiveResponse { Live = registry.IsLive });

    public override Task<ServerReadyResponse> ServerReady(ServerReadyRequest request, ServerCallContext context) =>
        Task.FromResult(new ServerReadyResponse { Ready = registry.IsReady });

    public override Task<ModelReadyResponse> ModelReady(ModelReadyRequest request, ServerCallContext context)
    {
        var model = Find(request.Name, request.Version);
        return Task.FromResult(new ModelReadyResponse { Ready = model.IsReady && !registry.IsStopping });
    }

    public override Task<ServerMetadataResponse> ServerMetadata(ServerMetadataRequest request, ServerCallContext context)
    {
        var response = new ServerMetadataResponse { Name = "lightning-serving", Version = typeof(InferenceGrpcService).Assembly.GetName().Version?.ToString(3) ?? "0.0.0" };
        response.Extensions.AddRange(InferenceEndpoints.ExtensionsOf(registry));
        return Task.FromResult(response);
    }

    public override Task<ModelMetadataResponse> ModelMetadata(ModelMetadataRequest request, ServerCallContext context)
    {
        var model = Find(request.Name, request.Version);
        var loaded = model.Current ?? throw new RpcException(new Status(StatusCode.Unavailable, $"model '{model.Name}' is not loaded yet."));
        var response = new ModelMetadataResponse { Name = model.Name, Platform = "onnx_onnxv1" };
        response.Versions.AddRange(registry.Versions(model.Name).Select(v => v.Version));
        foreach (var spec in loaded.Inputs) response.Inputs.Add(Metadata(spec));
        foreach (var spec in loaded.Outputs) response.Outputs.Add(Metadata(spec));
        return Task.FromResult(response);
    }

    public override async Task<ModelInferResponse> ModelInfer(ModelInferRequest request, ServerCallContext context)
    {
        var model = Find(request.ModelName, request.ModelVersion);
        if (registry.IsStopping)
            throw new RpcException(new Status(StatusCode.Unavailable, $"the server is shutting down; model '{model.Name}' takes no new requests."));
        CancellationTokenSource? timeout = null;
        try
        {
            var inputs = ReadInputs(request);
            List<string>? outputNames = request.Outputs.Count == 0 ? null : [.. request.Outputs.Select(o => o.Name)];
            var token = context.CancellationToken;
            if (request.Parameters.TryGetValue("timeout", out var t))
            {
                if (t.ParameterChoiceCase != InferParameter.ParameterChoiceOneofCase.Int64Param || t.Int64Param < 0)
                    throw new InferenceRequestException($"parameter \"timeout\" = {t} is not allowed; it is a non-negative int64_param of microseconds.");
                // 0 is no timeout, as Triton's.
                if (t.Int64Param > 0)
                {
                    timeout = CancellationTokenSource.CreateLinkedTokenSource(token);
                    timeout.CancelAfter(TimeSpan.FromMicroseconds(Math.Min(t.Int64Param, (long)int.MaxValue * 1000)));
                    token = timeout.Token;
                }
            }
            InferenceTensor[] outputs;
            try
            {
                outputs = await model.InferAsync(inputs, outputNames, token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (timeout is { IsCancellationRequested: true } && !context.CancellationToken.IsCancellationRequested)
            {
                throw new RpcException(new Status(StatusCode.Unavailable,
                    $"request timeout expired: the request for model '{model.Name}' took longer than its \"timeout\" parameter; it was dropped from the queue or its run was stopped."));
            }
            var response = new ModelInferResponse { ModelName = model.Name, ModelVersion = model.Version, Id = request.Id };
            foreach (var output in outputs)
            {
                var tensor = new ModelInferResponse.Types.InferOutputTensor { Name = output.Name, Datatype = output.Datatype };
                tensor.Shape.AddRange(output.Shape);
                response.Outputs.Add(tensor);
                var bytes = new byte[BinaryTensorData.Length(output)];
                BinaryTensorData.Encode(output, bytes);
                response.RawOutputContents.Add(UnsafeByteOperations.UnsafeWrap(bytes));
            }
            return response;
        }
        catch (InferenceRequestException ex)
        {
            throw new RpcException(new Status(StatusCode.InvalidArgument, ex.Message));
        }
        catch (InferenceUnavailableException ex)
        {
            throw new RpcException(new Status(StatusCode.Unavailable, ex.Message));
        }
        catch (InferenceRunException ex)
        {
            throw new RpcException(new Status(StatusCode.Internal, ex.Message));
        }
        finally
        {
            timeout?.Dispose();
        }
    }

    private ServedModel Find(string name, string version)
    {
        // An empty version is proto3's "not given": the latest serves.
        if (!registry.TryFind(name, version, out var model, out var missing))
            throw new RpcException(new Status(StatusCode.NotFound, missing));
        return model;
    }

    private static ModelMetadataResponse.Types.TensorMetadata Metadata(TensorSpec spec)
    {
        var tensor = new ModelMetadataResponse.Types.TensorMetadata { Name = spec.Name, Datatype = spec.Datatype };
        tensor.Shape.AddRange(spec.Shape);
        return tensor;
    }

    /// <summary>The request's inputs as tensors, from <c>raw_input_contents</c> (one per input) or each input's typed contents.</summary>
    private static List<InferenceTensor> ReadInputs(ModelInferRequest request)
    {
        if (request.Inputs.Count == 0)
            throw new InferenceRequestException("the request has no inputs; give each input's name, datatype, shape and data.");
        bool raw = request.RawInputContents.Count > 0;
        if (raw && request.RawInputContents.Count != request.Inputs.Count)
            throw new InferenceRequestException(
                $"the request has {request.Inputs.Count} inputs but {request.RawInputContents.Count} raw_input_contents; give one per input, in order, or none.");
        var inputs = new List<InferenceTensor>(request.Inputs.Count);
        for (int i = 0; i < request.Inputs.Count; i++)
        {
            var input = request.Inputs[i];
            var where = input.Name.Length == 0 ? $"inputs[{i}]" : $"input '{input.Name}'";
            if (input.Name.Length == 0) throw new InferenceRequestException($"{where} needs a name.");
            if (!TensorTypes.TryFromV2(input.Datatype, out var type) || !TensorTypes.IsSupported(type))
                throw new InferenceRequestException(
                    $"{where} has datatype '{input.Datatype}'; the supported datatypes are [{string.Join(", ", TensorTypes.SupportedDatatypes)}].");
            var shape = input.Shape.ToArray();
            if (shape.FirstOrDefault(d => d < 0, 0) is < 0 and var negative)
                throw new InferenceRequestException($"{where} has shape {TensorTypes.Format(shape)} with dim {negative}; shape dims must be non-negative integers.");
            Array data;
            if (raw)
            {
                if (input.Contents is not null && HasContents(input.Contents))
                    throw new InferenceRequestException($"{where} has contents although the request uses raw_input_contents; give its data one way.");
                data = BinaryTensorData.Decode(type, shape, request.RawInputContents[i].Span, where);
            }
            else
            {
                data = FromContents(type, shape, input.Contents ?? new InferTensorContents(), where, input.Datatype);
            }
            inputs.Add(new InferenceTensor(input.Name, type, shape, data));
        }
        return inputs;
    }

    private static bool HasContents(InferTensorContents c) =>
        c.BoolContents.Count + c.IntContents.Count + c.Int64Contents.Count + c.UintContents.Count + c.Uint64Contents.Count
        + c.Fp32Contents.Count + c.Fp64Contents.Count + c.BytesContents.Count > 0;

    /// <summary>Typed contents into a tensor; 8- and 16-bit integers are range-checked, FP16 and BF16 need raw contents.</summary>
    private static Array FromContents(TensorElementType type, long[] shape, InferTensorContents c, string where, string datatype)
    {
        (int count, string field) = type switch
        {
            TensorElementType.Bool => (c.BoolContents.Count, "bool_contents"),
            TensorElementType.Int8 or TensorElementType.Int16 or TensorElementType.Int32 => (c.IntContents.Count, "int_contents"),
            TensorElementType.UInt8 or TensorElementType.UInt16 or TensorElementType.UInt32 => (c.UintContents.Count, "uint_contents"),
            TensorElementType.Int64 => (c.Int64Contents.Count, "int64_contents"),
            TensorElementType.UInt64 => (c.Uint64Contents.Count, "uint64_contents"),
            TensorElementType.Float => (c.Fp32Contents.Count, "fp32_contents"),
            TensorElementType.Double => (c.Fp64Contents.Count, "fp64_contents"),
            TensorElementType.String => (c.BytesContents.Count, "bytes_contents"),
            _ => throw new InferenceRequestException($"{where} is {datatype}, which has no typed contents field; send it in raw_input_contents."),
        };
        var expected = TensorTypes.ElementCount(shape, count);
        if (expected != count)
            throw new InferenceRequestException(
                $"{where} has shape {TensorTypes.Format(shape)}, which needs {(expected < 0 ? "more than " + count : expected.ToString())} elements, but {field} holds {count}.");
        var data = TensorTypes.Allocate(type, count);
        for (int i = 0; i < count; i++)
        {
            switch (type)
            {
                case TensorElementType.Bool: ((bool[])data)[i] = c.BoolContents[i]; break;
                case TensorElementType.Int32: ((int[])data)[i] = c.IntContents[i]; break;
                case TensorElementType.Int16: ((short[])data)[i] = checked((short)Check(c.IntContents[i], short.MinValue, short.MaxValue, i)); break;
                case TensorElementType.Int8: ((sbyte[])data)[i] = checked((sbyte)Check(c.IntContents[i], sbyte.MinValue, sbyte.MaxValue, i)); break;
                case TensorElementType.UInt32: ((uint[])data)[i] = c.UintContents[i]; break;
                case TensorElementType.UInt16: ((ushort[])data)[i] = checked((ushort)Check(c.UintContents[i], 0, ushort.MaxValue, i)); break;
                case TensorElementType.UInt8: ((byte[])data)[i] = checked((byte)Check(c.UintContents[i], 0, byte.MaxValue, i)); break;
                case TensorElementType.Int64: ((long[])data)[i] = c.Int64Contents[i]; break;
                case TensorElementType.UInt64: ((ulong[])data)[i] = c.Uint64Contents[i]; break;
                case TensorElementType.Float: ((float[])data)[i] = c.Fp32Contents[i]; break;
                case TensorElementType.Double: ((double[])data)[i] = c.Fp64Contents[i]; break;
                case TensorElementType.String: ((byte[][])data)[i] = c.BytesContents[i].ToByteArray(); break;
            }
        }
        return data;

        long Check(long value, long min, long max, int index) => value >= min && value <= max ? value
            : throw new InferenceRequestException($"{where}: element {index} of {field} is {value}, outside {datatype}'s range {min} to {max}.");
    }
}
