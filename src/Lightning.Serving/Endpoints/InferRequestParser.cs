using System.Text.Json;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Lightning.Serving;

/// <summary>
/// Reads v2 infer requests (flat or nested <c>data</c>, or the binary tensor data extension's raw bytes) into typed
/// tensors; every failure is an <see cref="InferenceRequestException"/>. Memory stays a small multiple of the body: an
/// input's buffer is allocated only once its shape is known to fit in the body, and the data is read straight into it.
/// </summary>
internal static class InferRequestParser
{
    private static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = 64 };

    private static readonly JsonReaderOptions ReaderOptions = new() { MaxDepth = 64 };

    /// <summary>Reads a v2 infer request whose JSON is the whole body.</summary>
    /// <exception cref="InferenceRequestException">The body is not a valid request; the message names the part and what is allowed.</exception>
    public static InferRequest Parse(ReadOnlyMemory<byte> body) => Parse(body, ReadOnlyMemory<byte>.Empty);

    /// <summary>
    /// Reads a v2 infer request: <paramref name="json"/> is the JSON header and <paramref name="binary"/> the tensor data
    /// that follows it under the binary tensor data extension (the inputs with a <c>binary_data_size</c> parameter, in order).
    /// </summary>
    /// <exception cref="InferenceRequestException">The body is not a valid request; the message names the part and what is allowed.</exception>
    public static InferRequest Parse(ReadOnlyMemory<byte> json, ReadOnlyMemory<byte> binary) =>
        TryParseFast(json.Span, binary.Span) ?? ParseDocument(json, binary);

    /// <summary>
    /// One pass with <see cref="Utf8JsonReader"/> straight into typed buffers, for requests in the usual form (each
    /// input's "shape" and "datatype" before its "data", no repeated keys). Null for anything else, valid or not: the
    /// document parser then reads it, or explains what is wrong, so both paths accept and reject the same bodies.
    /// </summary>
    internal static InferRequest? TryParseFast(ReadOnlySpan<byte> body) => TryParseFast(body, []);

    internal static InferRequest? TryParseFast(ReadOnlySpan<byte> body, ReadOnlySpan<byte> binary)
    {
        try
        {
            var reader = new Utf8JsonReader(body, ReaderOptions);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject) return null;
            string? id = null;
            bool seenId = false, seenOutputs = false, seenParameters = false;
            var parameters = InferParameters.None;
            List<InferenceTensor>? inputs = null;
            List<RequestedOutput>? outputs = null;
            int binaryOffset = 0;
            // Where the reader's span starts in the body: the flat-number scan below restarts the reader past what it read.
            int readerBase = 0;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("inputs"u8))
                {
                    if (inputs is not null || !reader.Read() || reader.TokenType != JsonTokenType.StartArray) return null;
                    inputs = [];
                    while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                    {
                        if (ReadInput(ref reader, body, ref readerBase, binary, ref binaryOffset) is not { } input) return null;
                        inputs.Add(input);
                    }
                    if (inputs.Count == 0) return null;
                }
                else if (reader.ValueTextEquals("id"u8))
                {
                    if (seenId || !reader.Read()) return null;
                    seenId = true;
                    if (reader.TokenType == JsonTokenType.String) id = reader.GetString();
                    else if (reader.TokenType != JsonTokenType.Null) return null;
                }
                else if (reader.ValueTextEquals("parameters"u8))
                {
                    if (seenParameters || !reader.Read()) return null;
                    seenParameters = true;
                    if (reader.TokenType == JsonTokenType.Null) continue;
                    if (reader.TokenType != JsonTokenType.StartObject) return null;
                    bool seenTimeout = false, seenBinaryOutput = false;
                    while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                    {
                        if (reader.ValueTextEquals("timeout"u8))
                        {
                            if (seenTimeout) return null;
                            seenTimeout = true;
                            if (!reader.Read() || reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out var timeout) || timeout < 0) return null;
                            parameters = parameters with { TimeoutMicroseconds = timeout };
                        }
                        else if (reader.ValueTextEquals("binary_data_output"u8))
                        {
                            if (seenBinaryOutput) return null;
                            seenBinaryOutput = true;
                            if (!reader.Read() || reader.TokenType is not (JsonTokenType.True or JsonTokenType.False)) return null;
                            parameters = parameters with { BinaryDataOutput = reader.GetBoolean() };
                        }
                        else
                        {
                            reader.Read();
                            reader.Skip();
                        }
                    }
                }
                else if (reader.ValueTextEquals("outputs"u8))
                {
                    if (seenOutputs || !reader.Read()) return null;
                    seenOutputs = true;
                    if (reader.TokenType == JsonTokenType.Null) continue;
                    if (reader.TokenType != JsonTokenType.StartArray) return null;
                    outputs = [];
                    while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                    {
                        if (ReadOutput(ref reader) is not { } output) return null;
                        outputs.Add(output);
                    }
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }
            // Anything after the root object (other than whitespace) makes Read throw.
            if (reader.TokenType != JsonTokenType.EndObject || reader.Read() || inputs is null) return null;
            if (binaryOffset != binary.Length) return null;
            return new InferRequest(id, inputs, outputs, parameters);
        }
        catch (JsonException)
        {
            return null;
        }
        catch (InvalidOperationException)
        {
            // A string that is not valid UTF-16 (a lone surrogate escape): the document parser names it.
            return null;
        }
    }

    private static RequestedOutput? ReadOutput(ref Utf8JsonReader reader)
    {
        if (reader.TokenType != JsonTokenType.StartObject) return null;
        string? name = null;
        bool? binaryData = null;
        bool seenParameters = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("name"u8))
            {
                if (name is not null || (name = ReadName(ref reader)) is null) return null;
            }
            else if (reader.ValueTextEquals("parameters"u8))
            {
                if (seenParameters || !reader.Read()) return null;
                seenParameters = true;
                if (reader.TokenType == JsonTokenType.Null) continue;
                if (reader.TokenType != JsonTokenType.StartObject) return null;
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    if (reader.ValueTextEquals("binary_data"u8))
                    {
                        if (binaryData is not null || !reader.Read() || reader.TokenType is not (JsonTokenType.True or JsonTokenType.False)) return null;
                        binaryData = reader.GetBoolean();
                    }
                    else
                    {
                        reader.Read();
                        reader.Skip();
                    }
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
        return name is null ? null : new RequestedOutput(name, binaryData);
    }

    private static InferenceTensor? ReadInput(ref Utf8JsonReader reader, ReadOnlySpan<byte> body, ref int readerBase, ReadOnlySpan<byte> binary, ref int binaryOffset)
    {
        int bodyLength = body.Length;
        if (reader.TokenType != JsonTokenType.StartObject) return null;
        string? name = null, datatype = null;
        var type = TensorElementType.Float;
        long[]? shape = null;
        Array? data = null;
        long? binarySize = null;
        bool seenParameters = false;
        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("name"u8))
            {
                if (name is not null || (name = ReadName(ref reader)) is null) return null;
            }
            else if (reader.ValueTextEquals("datatype"u8))
            {
                if (datatype is not null || (datatype = ReadName(ref reader)) is null) return null;
                if (!TensorTypes.TryFromV2(datatype, out type) || !TensorTypes.IsSupported(type)) return null;
            }
            else if (reader.ValueTextEquals("shape"u8))
            {
                if (shape is not null || !reader.Read() || reader.TokenType != JsonTokenType.StartArray) return null;
                var dims = new List<long>(4);
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    if (reader.TokenType != JsonTokenType.Number || !reader.TryGetInt64(out var dim) || dim < 0) return null;
                    dims.Add(dim);
                }
                shape = [.. dims];
            }
            else if (reader.ValueTextEquals("data"u8))
            {
                if (data is not null || datatype is null || shape is null || !reader.Read()) return null;
                // Each element takes at least one byte of the body, so a larger shape cannot match; never allocate for it.
                var expected = TensorTypes.ElementCount(shape, bodyLength);
                if (expected < 0) return null;
                // FP32 parses into this thread's spare buffer (handed back after an inline run), every element overwritten.
                data = type == TensorElementType.Float ? SpareFloats.Take(expected) : TensorTypes.Allocate(type, expected);
                if (ReadData(ref reader, type, data, body, ref readerBase) != expected) return null;
            }
            else if (reader.ValueTextEquals("parameters"u8))
            {
                if (seenParameters || !reader.Read()) return null;
                seenParameters = true;
                if (reader.TokenType == JsonTokenType.Null) continue;
                if (reader.TokenType != JsonTokenType.StartObject) return null;
                while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                {
                    if (reader.ValueTextEquals("binary_data_size"u8))
                    {
                        if (binarySize is not null || !reader.Read() || reader.TokenType != JsonTokenType.Number
                            || !reader.TryGetInt64(out var size) || size < 0) return null;
                        binarySize = size;
                    }
                    else
                    {
                        reader.Read();
                        reader.Skip();
                    }
                }
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
        if (name is null || datatype is null || shape is null) return null;
        if (binarySize is { } bytes)
        {
            if (data is not null || bytes > binary.Length - binaryOffset) return null;
            try
            {
                data = BinaryTensorData.Decode(type, shape, binary.Slice(binaryOffset, (int)bytes), $"input '{name}'");
            }
            catch (InferenceRequestException)
            {
                return null;
            }
            binaryOffset += (int)bytes;
        }
        return data is null ? null : new InferenceTensor(name, type, shape, data);
    }

    /// <summary>Reads a non-empty string value; null for anything else.</summary>
    private static string? ReadName(ref Utf8JsonReader reader) =>
        reader.Read() && reader.TokenType == JsonTokenType.String && reader.GetString() is { Length: > 0 } text ? text : null;

    /// <summary>Reads flat or nested data into <paramref name="data"/>; returns the element count, or -1 when an element does not fit.</summary>
    private static long ReadData(ref Utf8JsonReader reader, TensorElementType type, Array data, ReadOnlySpan<byte> body, ref int readerBase)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
            return data.Length > 0 && TrySet(ref reader, type, data, 0) ? 1 : -1;
        int depth = reader.CurrentDepth;
        int count = 0;
        // A flat array of short decimals is scanned straight from the bytes, and the reader restarts at its ']' from its
        // saved state; anything else (nesting, long numbers, a grammar error) leaves the reader where it was, to go on below.
        if (type == TensorElementType.Float)
        {
            int position = readerBase + (int)reader.BytesConsumed;
            if (FlatNumberScanner.TryScan(body, ref position, (float[])data, out int scanned))
            {
                var state = reader.CurrentState;
                reader = new Utf8JsonReader(body[position..], isFinalBlock: true, state);
                readerBase = position;
                reader.Read();
                return scanned;
            }
        }
        // Flat FP32 is nearly every request: read it without the per-element type dispatch. A nested array goes on below.
        if (type == TensorElementType.Float)
        {
            var floats = (float[])data;
            while (reader.Read() && reader.TokenType == JsonTokenType.Number)
            {
                // A number past FP32's range would become infinity; one that rounds to float.MaxValue (its shortest text) is fine.
                if (count >= floats.Length || !TryGetDouble(ref reader, out var value) || !float.IsFinite((float)value)) return -1;
                floats[count++] = (float)value;
            }
            if (reader.TokenType == JsonTokenType.EndArray) return count;
            if (reader.TokenType != JsonTokenType.StartArray) return -1;
        }
        while (reader.Read())
        {
            switch (reader.TokenType)
            {
                case JsonTokenType.EndArray when reader.CurrentDepth == depth:
                    return count;
                case JsonTokenType.StartArray or JsonTokenType.EndArray:
                    continue;
                default:
                    if (count >= data.Length || !TrySet(ref reader, type, data, count)) return -1;
                    count++;
                    break;
            }
        }
        return -1;
    }

    private static bool TrySet(ref Utf8JsonReader e, TensorElementType type, Array data, int i)
    {
        if (type == TensorElementType.Bool)
        {
            if (e.TokenType is JsonTokenType.True or JsonTokenType.False) { ((bool[])data)[i] = e.GetBoolean(); return true; }
            if (e.TokenType == JsonTokenType.Number && e.TryGetInt32(out var b) && b is 0 or 1) { ((bool[])data)[i] = b == 1; return true; }
            return false;
        }
        if (type == TensorElementType.String)
        {
            if (e.TokenType != JsonTokenType.String) return false;
            if (!e.ValueIsEscaped && !e.HasValueSequence)
            {
                ((byte[][])data)[i] = e.ValueSpan.ToArray();
                return true;
            }
            // Unescaped text is never longer than its escaped form. A lone surrogate escape has no UTF-8 form and throws.
            var buffer = new byte[e.HasValueSequence ? e.ValueSequence.Length : e.ValueSpan.Length];
            try
            {
                int written = e.CopyString(buffer);
                ((byte[][])data)[i] = buffer.AsSpan(0, written).ToArray();
                return true;
            }
            catch (InvalidOperationException)
            {
                return false;
            }
        }
        if (e.TokenType != JsonTokenType.Number) return false;
        switch (type)
        {
            case TensorElementType.Float:
                if (!TryGetDouble(ref e, out var f) || !float.IsFinite((float)f)) return false;
                ((float[])data)[i] = (float)f;
                return true;
            case TensorElementType.Float16:
                // A number past FP16's range (65504) would silently become infinity.
                if (!TryGetDouble(ref e, out var h) || !Float16.IsFinite((Float16)(float)h)) return false;
                ((Float16[])data)[i] = (Float16)(float)h;
                return true;
            case TensorElementType.BFloat16:
                if (!TryGetDouble(ref e, out var bf) || !BFloat16.IsFinite((BFloat16)(float)bf)) return false;
                ((BFloat16[])data)[i] = (BFloat16)(float)bf;
                return true;
            case TensorElementType.Double:
                if (!TryGetDouble(ref e, out var x)) return false;
                ((double[])data)[i] = x;
                return true;
            case TensorElementType.Int64:
                if (!e.TryGetInt64(out var l)) return false;
                ((long[])data)[i] = l;
                return true;
            case TensorElementType.Int32:
                if (!e.TryGetInt32(out var n)) return false;
                ((int[])data)[i] = n;
                return true;
            case TensorElementType.Int16:
                if (!e.TryGetInt16(out var s)) return false;
                ((short[])data)[i] = s;
                return true;
            case TensorElementType.Int8:
                if (!e.TryGetSByte(out var sb)) return false;
                ((sbyte[])data)[i] = sb;
                return true;
            case TensorElementType.UInt64:
                if (!e.TryGetUInt64(out var ul)) return false;
                ((ulong[])data)[i] = ul;
                return true;
            case TensorElementType.UInt32:
                if (!e.TryGetUInt32(out var ui)) return false;
                ((uint[])data)[i] = ui;
                return true;
            case TensorElementType.UInt16:
                if (!e.TryGetUInt16(out var us)) return false;
                ((ushort[])data)[i] = us;
                return true;
            case TensorElementType.UInt8:
                if (!e.TryGetByte(out var u8)) return false;
                ((byte[])data)[i] = u8;
                return true;
            default:
                return false;
        }
    }

    /// <summary><see cref="Utf8JsonReader.TryGetDouble"/>, bit for bit, with the common short decimals read in a few instructions.</summary>
    private static bool TryGetDouble(ref Utf8JsonReader reader, out double value) =>
        (!reader.HasValueSequence && JsonNumberParser.TryParseShortDecimal(reader.ValueSpan, out value)) || reader.TryGetDouble(out value);

    internal static InferRequest ParseDocument(ReadOnlyMemory<byte> body) => ParseDocument(body, ReadOnlyMemory<byte>.Empty);

    internal static InferRequest ParseDocument(ReadOnlyMemory<byte> body, ReadOnlyMemory<byte> binary)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body, DocumentOptions);
        }
        catch (JsonException ex)
        {
            throw new InferenceRequestException($"malformed JSON in the request body: {ex.Message}");
        }
        using (document)
        {
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new InferenceRequestException($"the request body must be a JSON object with \"inputs\", but it is a JSON {Kind(root)}.");
            RejectDuplicateKeys(root, "the request");
            string? id = null;
            if (root.TryGetProperty("id", out var idElement) && idElement.ValueKind != JsonValueKind.Null)
                id = idElement.ValueKind == JsonValueKind.String ? Text(idElement, "\"id\"")
                    : throw new InferenceRequestException($"\"id\" must be a string, but it is a JSON {Kind(idElement)}.");
            var parameters = ReadParameters(root);
            if (!root.TryGetProperty("inputs", out var inputsElement))
                throw new InferenceRequestException("the request has no \"inputs\"; give an array of {\"name\", \"shape\", \"datatype\", \"data\"}.");
            if (inputsElement.ValueKind != JsonValueKind.Array || inputsElement.GetArrayLength() == 0)
                throw new InferenceRequestException($"\"inputs\" must be a non-empty array, but it is {Describe(inputsElement)}.");
            var inputs = new List<InferenceTensor>();
            int index = 0, binaryOffset = 0;
            foreach (var input in inputsElement.EnumerateArray())
                inputs.Add(ParseInput(input, index++, body.Length, binary.Span, ref binaryOffset));
            if (binaryOffset != binary.Length)
                throw new InferenceRequestException(
                    $"the request carries {binary.Length} bytes of binary tensor data, but its inputs' \"binary_data_size\" parameters add up to {binaryOffset}.");
            List<RequestedOutput>? outputs = null;
            if (root.TryGetProperty("outputs", out var outputsElement) && outputsElement.ValueKind != JsonValueKind.Null)
            {
                if (outputsElement.ValueKind != JsonValueKind.Array)
                    throw new InferenceRequestException($"\"outputs\" must be an array of {{\"name\"}}, but it is a JSON {Kind(outputsElement)}.");
                outputs = [];
                int o = 0;
                foreach (var output in outputsElement.EnumerateArray())
                {
                    var where = $"outputs[{o++}]";
                    if (output.ValueKind != JsonValueKind.Object)
                        throw new InferenceRequestException($"{where} must be an object with \"name\", but it is a JSON {Kind(output)}.");
                    RejectDuplicateKeys(output, where);
                    var name = RequiredString(output, "name", where);
                    bool? binaryData = null;
                    if (Parameters(output, $"output '{name}'") is { } p && p.TryGetProperty("binary_data", out var flag))
                        binaryData = flag.ValueKind is JsonValueKind.True or JsonValueKind.False ? flag.GetBoolean()
                            : throw new InferenceRequestException($"output '{name}' has parameter \"binary_data\" = {Describe(flag)}; it must be true or false.");
                    outputs.Add(new RequestedOutput(name, binaryData));
                }
            }
            return new InferRequest(id, inputs, outputs, parameters);
        }
    }

    private static InferParameters ReadParameters(JsonElement root)
    {
        var parameters = InferParameters.None;
        if (Parameters(root, "the request") is not { } p) return parameters;
        if (p.TryGetProperty("timeout", out var timeout))
            parameters = parameters with
            {
                TimeoutMicroseconds = timeout.ValueKind == JsonValueKind.Number && timeout.TryGetInt64(out var t) && t >= 0 ? t
                    : throw new InferenceRequestException($"parameter \"timeout\" = {Describe(timeout)} is not allowed; it is a non-negative integer of microseconds."),
            };
        if (p.TryGetProperty("binary_data_output", out var binary))
            parameters = parameters with
            {
                BinaryDataOutput = binary.ValueKind is JsonValueKind.True or JsonValueKind.False ? binary.GetBoolean()
                    : throw new InferenceRequestException($"parameter \"binary_data_output\" = {Describe(binary)} is not allowed; it must be true or false."),
            };
        return parameters;
    }

    /// <summary>The owner's "parameters" object; null when absent or null.</summary>
    private static JsonElement? Parameters(JsonElement owner, string where)
    {
        if (!owner.TryGetProperty("parameters", out var p) || p.ValueKind == JsonValueKind.Null) return null;
        if (p.ValueKind != JsonValueKind.Object)
            throw new InferenceRequestException($"\"parameters\" of {where} must be an object, but it is a JSON {Kind(p)}.");
        RejectDuplicateKeys(p, $"\"parameters\" of {where}");
        return p;
    }

    private static InferenceTensor ParseInput(JsonElement input, int index, long bodyLength, ReadOnlySpan<byte> binary, ref int binaryOffset)
    {
        if (input.ValueKind != JsonValueKind.Object)
            throw new InferenceRequestException($"inputs[{index}] must be an object with \"name\", \"shape\", \"datatype\" and \"data\", but it is a JSON {Kind(input)}.");
        RejectDuplicateKeys(input, $"inputs[{index}]");
        var name = RequiredString(input, "name", $"inputs[{index}]");
        var where = $"input '{name}'";
        var datatype = RequiredString(input, "datatype", where);
        if (!TensorTypes.TryFromV2(datatype, out var type) || !TensorTypes.IsSupported(type))
            throw new InferenceRequestException(
                $"{where} has datatype '{datatype}'; the supported datatypes are [{string.Join(", ", TensorTypes.SupportedDatatypes)}].");

        if (!input.TryGetProperty("shape", out var shapeElement) || shapeElement.ValueKind != JsonValueKind.Array)
            throw new InferenceRequestException($"{where} needs \"shape\", an array of non-negative integers.");
        var shape = new long[shapeElement.GetArrayLength()];
        int d = 0;
        foreach (var dim in shapeElement.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt64(out var size) || size < 0)
                throw new InferenceRequestException($"{where} has shape element {d} = {Describe(dim)}; shape dims must be non-negative integers.");
            shape[d++] = size;
        }

        long? binarySize = null;
        if (Parameters(input, where) is { } p && p.TryGetProperty("binary_data_size", out var sizeElement))
            binarySize = sizeElement.ValueKind == JsonValueKind.Number && sizeElement.TryGetInt64(out var s) && s >= 0 ? s
                : throw new InferenceRequestException($"{where} has parameter \"binary_data_size\" = {Describe(sizeElement)}; it must be a non-negative integer of bytes.");
        bool hasData = input.TryGetProperty("data", out var dataElement);
        if (binarySize is { } bytes)
        {
            if (hasData)
                throw new InferenceRequestException($"{where} has both \"data\" and the \"binary_data_size\" parameter; give its data one way.");
            if (bytes > binary.Length - binaryOffset)
                throw new InferenceRequestException(
                    $"{where} has \"binary_data_size\" = {bytes}, but only {binary.Length - binaryOffset} bytes of binary tensor data are left for it " +
                    "(send the JSON length in the Inference-Header-Content-Length header and the inputs' bytes after the JSON, in input order).");
            var decoded = BinaryTensorData.Decode(type, shape, binary.Slice(binaryOffset, (int)bytes), where);
            binaryOffset += (int)bytes;
            return new InferenceTensor(name, type, shape, decoded);
        }
        if (!hasData)
            throw new InferenceRequestException($"{where} has no \"data\" (nor a \"binary_data_size\" parameter).");
        // Count before allocating, and stop counting at the shape's element count: a body can never hold more elements than bytes.
        var expected = TensorTypes.ElementCount(shape, bodyLength);
        long found = CountLeaves(dataElement, expected < 0 ? bodyLength : expected);
        if (expected != found)
            throw new InferenceRequestException(
                $"{where} has shape {TensorTypes.Format(shape)}, which needs {(expected < 0 ? "more elements than the body has bytes" : expected.ToString())} elements, " +
                $"but \"data\" holds {(found > expected ? $"more than {Math.Max(expected, 0)}" : found.ToString())}.");
        var data = TensorTypes.Allocate(type, expected);
        int i = 0;
        Fill(dataElement, type, data, ref i, where, datatype);
        return new InferenceTensor(name, type, shape, data);
    }

    /// <summary>The leaves of a nested array, counting no further than one past <paramref name="limit"/>.</summary>
    private static long CountLeaves(JsonElement element, long limit)
    {
        if (element.ValueKind != JsonValueKind.Array) return 1;
        long count = 0;
        foreach (var item in element.EnumerateArray())
        {
            count += CountLeaves(item, limit - count);
            if (count > limit) return count;
        }
        return count;
    }

    private static void Fill(JsonElement element, TensorElementType type, Array data, ref int i, string where, string datatype)
    {
        if (element.ValueKind == JsonValueKind.Array)
        {
            foreach (var item in element.EnumerateArray()) Fill(item, type, data, ref i, where, datatype);
            return;
        }
        if (!TrySet(element, type, data, i))
            throw new InferenceRequestException($"{where}: data element {i} is {Describe(element)}, not a {datatype} value.");
        i++;
    }

    /// <summary>Converts one leaf of the document with the same rules as the fast path.</summary>
    private static bool TrySet(JsonElement e, TensorElementType type, Array data, int i)
    {
        var reader = new Utf8JsonReader(System.Runtime.InteropServices.JsonMarshal.GetRawUtf8Value(e));
        return reader.Read() && TrySet(ref reader, type, data, i);
    }

    private static readonly HashSet<string> KnownKeys = new(StringComparer.Ordinal)
    {
        "id", "inputs", "outputs", "parameters", "name", "datatype", "shape", "data",
        "timeout", "binary_data_output", "binary_data_size", "binary_data",
    };

    /// <summary>
    /// A repeated key that the server reads is refused: which of the two counts differs between JSON libraries, so
    /// neither is guessed. Keys the server ignores may repeat.
    /// </summary>
    private static void RejectDuplicateKeys(JsonElement obj, string where)
    {
        HashSet<string>? seen = null;
        foreach (var property in obj.EnumerateObject())
        {
            if (!KnownKeys.Contains(property.Name)) continue;
            seen ??= new HashSet<string>(StringComparer.Ordinal);
            if (!seen.Add(property.Name))
                throw new InferenceRequestException($"{where} has the key \"{property.Name}\" more than once; each key may appear once.");
        }
    }

    private static string RequiredString(JsonElement owner, string property, string where) =>
        owner.TryGetProperty(property, out var value) && value.ValueKind == JsonValueKind.String && Text(value, $"\"{property}\" of {where}") is { Length: > 0 } text
            ? text
            : throw new InferenceRequestException($"{where} needs \"{property}\", a non-empty string.");

    /// <summary>A string value; one that is not valid UTF-16 (a lone surrogate escape such as "\ud800") is the client's error.</summary>
    private static string Text(JsonElement value, string what)
    {
        try
        {
            return value.GetString()!;
        }
        catch (InvalidOperationException)
        {
            throw new InferenceRequestException(
                $"{what} = {Describe(value)} is not valid text: it holds a lone surrogate escape (\\ud800 to \\udfff without its pair); send valid Unicode.");
        }
    }

    private static string Kind(JsonElement e) => e.ValueKind.ToString().ToLowerInvariant();

    private static string Describe(JsonElement e)
    {
        var raw = e.GetRawText();
        return raw.Length <= 40 ? raw : raw[..40] + "…";
    }
}
