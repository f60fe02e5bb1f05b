using System.Text.Json;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Lightning.Serving;

/// <summary>Reads v2 infer requests (flat or nested <c>data</c>) into typed tensors; every failure is an <see cref="InferenceRequestException"/>.</summary>
internal static class InferRequestParser
{
    private static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = 64 };

    private static readonly JsonReaderOptions ReaderOptions = new() { MaxDepth = 64 };

    /// <summary>Reads a v2 infer request.</summary>
    /// <exception cref="InferenceRequestException">The body is not a valid request; the message names the part and what is allowed.</exception>
    public static InferRequest Parse(ReadOnlyMemory<byte> body) => TryParseFast(body.Span) ?? ParseDocument(body);

    /// <summary>
    /// One pass with <see cref="Utf8JsonReader"/> straight into typed buffers, for requests in the usual form (each
    /// input's "shape" and "datatype" before its "data", no repeated keys). Null for anything else, valid or not: the
    /// document parser then reads it, or explains what is wrong, so both paths accept and reject the same bodies.
    /// </summary>
    internal static InferRequest? TryParseFast(ReadOnlySpan<byte> body)
    {
        try
        {
            var reader = new Utf8JsonReader(body, ReaderOptions);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject) return null;
            string? id = null;
            bool seenId = false, seenOutputs = false;
            List<InferenceTensor>? inputs = null;
            List<string>? outputs = null;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("inputs"u8))
                {
                    if (inputs is not null || !reader.Read() || reader.TokenType != JsonTokenType.StartArray) return null;
                    inputs = [];
                    while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                    {
                        if (ReadInput(ref reader, body.Length) is not { } input) return null;
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
                else if (reader.ValueTextEquals("outputs"u8))
                {
                    if (seenOutputs || !reader.Read()) return null;
                    seenOutputs = true;
                    if (reader.TokenType == JsonTokenType.Null) continue;
                    if (reader.TokenType != JsonTokenType.StartArray) return null;
                    outputs = [];
                    while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                    {
                        if (reader.TokenType != JsonTokenType.StartObject) return null;
                        string? name = null;
                        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
                        {
                            if (!reader.ValueTextEquals("name"u8)) { reader.Read(); reader.Skip(); }
                            else if (name is not null || ReadName(ref reader) is not { } read) return null;
                            else name = read;
                        }
                        if (name is null) return null;
                        outputs.Add(name);
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
            return new InferRequest(id, inputs, outputs);
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static InferenceTensor? ReadInput(ref Utf8JsonReader reader, int bodyLength)
    {
        if (reader.TokenType != JsonTokenType.StartObject) return null;
        string? name = null, datatype = null;
        var type = TensorElementType.Float;
        long[]? shape = null;
        Array? data = null;
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
                data = TensorTypes.Allocate(type, expected);
                if (ReadData(ref reader, type, data) != expected) return null;
            }
            else
            {
                reader.Read();
                reader.Skip();
            }
        }
        return name is null || data is null ? null : new InferenceTensor(name, type, shape!, data);
    }

    /// <summary>Reads a non-empty string value; null for anything else.</summary>
    private static string? ReadName(ref Utf8JsonReader reader) =>
        reader.Read() && reader.TokenType == JsonTokenType.String && reader.GetString() is { Length: > 0 } text ? text : null;

    /// <summary>Reads flat or nested data into <paramref name="data"/>; returns the element count, or -1 when an element does not fit.</summary>
    private static long ReadData(ref Utf8JsonReader reader, TensorElementType type, Array data)
    {
        if (reader.TokenType != JsonTokenType.StartArray)
            return data.Length > 0 && TrySet(ref reader, type, data, 0) ? 1 : -1;
        int depth = reader.CurrentDepth;
        int count = 0;
        // Flat FP32 is nearly every request: read it without the per-element type dispatch. A nested array goes on below.
        if (data is float[] floats)
        {
            while (reader.Read() && reader.TokenType == JsonTokenType.Number)
            {
                if (count >= floats.Length || !TryGetDouble(ref reader, out var value) || Math.Abs(value) > float.MaxValue) return -1;
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
        if (e.TokenType != JsonTokenType.Number) return false;
        switch (type)
        {
            case TensorElementType.Float:
                if (!TryGetDouble(ref e, out var f) || Math.Abs(f) > float.MaxValue) return false;
                ((float[])data)[i] = (float)f;
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

    internal static InferRequest ParseDocument(ReadOnlyMemory<byte> body)
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
            string? id = null;
            if (root.TryGetProperty("id", out var idElement) && idElement.ValueKind != JsonValueKind.Null)
                id = idElement.ValueKind == JsonValueKind.String ? idElement.GetString()
                    : throw new InferenceRequestException($"\"id\" must be a string, but it is a JSON {Kind(idElement)}.");
            if (!root.TryGetProperty("inputs", out var inputsElement))
                throw new InferenceRequestException("the request has no \"inputs\"; give an array of {\"name\", \"shape\", \"datatype\", \"data\"}.");
            if (inputsElement.ValueKind != JsonValueKind.Array || inputsElement.GetArrayLength() == 0)
                throw new InferenceRequestException($"\"inputs\" must be a non-empty array, but it is {Describe(inputsElement)}.");
            var inputs = new List<InferenceTensor>();
            int index = 0;
            foreach (var input in inputsElement.EnumerateArray())
                inputs.Add(ParseInput(input, index++, body.Length));
            List<string>? outputs = null;
            if (root.TryGetProperty("outputs", out var outputsElement) && outputsElement.ValueKind != JsonValueKind.Null)
            {
                if (outputsElement.ValueKind != JsonValueKind.Array)
                    throw new InferenceRequestException($"\"outputs\" must be an array of {{\"name\"}}, but it is a JSON {Kind(outputsElement)}.");
                outputs = [];
                int o = 0;
                foreach (var output in outputsElement.EnumerateArray())
                {
                    outputs.Add(output.ValueKind == JsonValueKind.Object ? RequiredString(output, "name", $"outputs[{o}]")
                        : throw new InferenceRequestException($"outputs[{o}] must be an object with \"name\", but it is a JSON {Kind(output)}."));
                    o++;
                }
            }
            return new InferRequest(id, inputs, outputs);
        }
    }

    private static InferenceTensor ParseInput(JsonElement input, int index, long bodyLength)
    {
        if (input.ValueKind != JsonValueKind.Object)
            throw new InferenceRequestException($"inputs[{index}] must be an object with \"name\", \"shape\", \"datatype\" and \"data\", but it is a JSON {Kind(input)}.");
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

        if (!input.TryGetProperty("data", out var dataElement))
            throw new InferenceRequestException($"{where} has no \"data\".");
        var leaves = new List<JsonElement>();
        Flatten(dataElement, leaves, bodyLength, where);
        var expected = TensorTypes.ElementCount(shape, int.MaxValue);
        if (expected != leaves.Count)
            throw new InferenceRequestException(
                $"{where} has shape {TensorTypes.Format(shape)}, which needs {(expected < 0 ? "more than 2^31" : expected.ToString())} elements, but \"data\" holds {leaves.Count}.");
        var data = TensorTypes.Allocate(type, leaves.Count);
        for (int i = 0; i < leaves.Count; i++)
            if (!TrySet(leaves[i], type, data, i))
                throw new InferenceRequestException($"{where}: data element {i} is {Describe(leaves[i])}, not a {datatype} value.");
        return new InferenceTensor(name, type, shape, data);
    }

    private static void Flatten(JsonElement element, List<JsonElement> leaves, long limit, string where)
    {
        if (element.ValueKind != JsonValueKind.Array)
        {
            leaves.Add(element);
            return;
        }
        foreach (var item in element.EnumerateArray())
        {
            if (leaves.Count > limit)
                throw new InferenceRequestException($"{where} holds more data elements than the body has bytes.");
            Flatten(item, leaves, limit, where);
        }
    }

    /// <summary>Converts one leaf of the document with the same rules as the fast path.</summary>
    private static bool TrySet(JsonElement e, TensorElementType type, Array data, int i)
    {
        var reader = new Utf8JsonReader(System.Runtime.InteropServices.JsonMarshal.GetRawUtf8Value(e));
        return reader.Read() && TrySet(ref reader, type, data, i);
    }

    private static string RequiredString(JsonElement owner, string property, string where) =>
        owner.TryGetProperty(property, out var value) && value.ValueKind == JsonValueKind.String && value.GetString() is { Length: > 0 } text
            ? text
            : throw new InferenceRequestException($"{where} needs \"{property}\", a non-empty string.");

    private static string Kind(JsonElement e) => e.ValueKind.ToString().ToLowerInvariant();

    private static string Describe(JsonElement e)
    {
        var raw = e.GetRawText();
        return raw.Length <= 40 ? raw : raw[..40] + "…";
    }
}
