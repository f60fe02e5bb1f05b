using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Http;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Lightning.Serving;

/// <summary>A parsed v2 infer request: the optional id, the inputs and the requested outputs (null = all).</summary>
internal sealed record InferRequest(string? Id, List<InferenceTensor> Inputs, List<string>? Outputs);

/// <summary>The v2 error body, <c>{"error": "..."}</c>.</summary>
internal sealed record InferenceError([property: JsonPropertyName("error")] string Error);

/// <summary>The v2 server liveness and readiness bodies.</summary>
internal sealed record ServerHealth(
    [property: JsonPropertyName("live")] bool Live,
    [property: JsonPropertyName("ready"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] bool? Ready);

/// <summary>The v2 model readiness body.</summary>
internal sealed record ModelReadiness([property: JsonPropertyName("name")] string Name, [property: JsonPropertyName("ready")] bool Ready);

/// <summary>A tensor of the v2 model metadata.</summary>
internal sealed record TensorMetadata(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("datatype")] string Datatype,
    [property: JsonPropertyName("shape")] long[] Shape);

/// <summary>The v2 model metadata body, with the execution provider in use under <c>parameters</c>.</summary>
internal sealed record ModelMetadata(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("versions")] string[] Versions,
    [property: JsonPropertyName("platform")] string Platform,
    [property: JsonPropertyName("inputs")] IReadOnlyList<TensorMetadata> Inputs,
    [property: JsonPropertyName("outputs")] IReadOnlyList<TensorMetadata> Outputs,
    [property: JsonPropertyName("parameters")] IReadOnlyDictionary<string, object> Parameters);

/// <summary>The 200 answer of a v2 infer request, written by <see cref="InferenceJson.WriteResponse"/> straight to the response body.</summary>
internal sealed class InferResult(string modelName, string? id, IReadOnlyList<InferenceTensor> outputs) : IResult, IStatusCodeHttpResult, IContentTypeHttpResult
{
    public int? StatusCode => StatusCodes.Status200OK;

    public string ContentType => "application/json; charset=utf-8";

    public async Task ExecuteAsync(HttpContext httpContext)
    {
        var response = httpContext.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = ContentType;
        // The writer fills the pipe's own buffers; disposing it commits them, and the flush sends them.
        using (var writer = new Utf8JsonWriter(response.BodyWriter, InferenceJson.WriterOptions))
            InferenceJson.WriteResponse(writer, modelName, id, outputs);
        await response.BodyWriter.FlushAsync(httpContext.RequestAborted).ConfigureAwait(false);
    }
}

/// <summary>Reads v2 infer requests (flat or nested <c>data</c>) into typed tensors; every failure is an <see cref="InferenceRequestException"/>.</summary>
internal static class InferenceJson
{
    /// <summary>
    /// Serializer settings of the v2 bodies: property names as declared, NaN and infinities as named literals, and
    /// ASP.NET Core's relaxed escaping, so an error reads "input 'x'" rather than "input \u0027x\u0027" (the bodies are
    /// application/json, never embedded in HTML).
    /// </summary>
    public static readonly JsonSerializerOptions SerializerOptions = new()
    {
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    /// <summary>The escaping of <see cref="SerializerOptions"/>, for the responses written without the serializer.</summary>
    public static readonly JsonWriterOptions WriterOptions = new() { Encoder = SerializerOptions.Encoder };

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
        (!reader.HasValueSequence && TryParseShortDecimal(reader.ValueSpan, out value)) || reader.TryGetDouble(out value);

    /// <summary>Powers of ten that a double holds exactly.</summary>
    private static readonly double[] ExactPowersOf10 =
        [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22];

    /// <summary>
    /// Reads a JSON number token (its grammar already checked by the reader) whose digits form an integer m ≤ 2^53 and
    /// whose decimal exponent e has |e| ≤ 22: then m and 10^|e| are exact doubles, so the one multiply or divide rounds
    /// correctly (Clinger's fast path) and equals the general parser's result. False for anything else, which the
    /// general parser reads. Values such as "0.84147096" or "-3e2" take this path; the general one costs several times more.
    /// </summary>
    internal static bool TryParseShortDecimal(ReadOnlySpan<byte> number, out double value)
    {
        value = 0;
        int i = 0;
        bool negative = number.Length > 0 && number[0] == (byte)'-';
        if (negative) i++;
        ulong mantissa = 0;
        int digits = 0, scale = 0;
        for (; i < number.Length && (uint)(number[i] - '0') <= 9; i++, digits++)
            mantissa = mantissa * 10 + (uint)(number[i] - '0');
        if (i < number.Length && number[i] == (byte)'.')
        {
            for (i++; i < number.Length && (uint)(number[i] - '0') <= 9; i++, digits++, scale--)
                mantissa = mantissa * 10 + (uint)(number[i] - '0');
        }
        // 19 digits cannot overflow a ulong; leading zeros count too, which only sends more numbers to the general path.
        if (digits is 0 or > 19 || mantissa > 1UL << 53) return false;
        if (i < number.Length)
        {
            if ((number[i] | 0x20) != (byte)'e') return false;
            i++;
            bool negativeExponent = i < number.Length && number[i] == (byte)'-';
            if (i < number.Length && number[i] is (byte)'-' or (byte)'+') i++;
            int exponent = 0;
            for (; i < number.Length && (uint)(number[i] - '0') <= 9; i++)
            {
                exponent = exponent * 10 + (number[i] - '0');
                if (exponent > 100) return false;
            }
            if (i < number.Length) return false;
            scale += negativeExponent ? -exponent : exponent;
        }
        if (scale is < -22 or > 22) return false;
        double m = mantissa;
        value = scale < 0 ? m / ExactPowersOf10[-scale] : m * ExactPowersOf10[scale];
        if (negative) value = -value;
        return true;
    }

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

    /// <summary>
    /// Writes the v2 infer response body, <c>{"model_name", "id" (unless null), "outputs": [{"name", "shape", "datatype",
    /// "data"}]}</c>, exactly as the serializer would with <see cref="SerializerOptions"/> (UINT8 as numbers, not base64;
    /// NaN and infinities as named literals), but without its per-call type lookups, boxing and copies.
    /// </summary>
    public static void WriteResponse(Utf8JsonWriter writer, string modelName, string? id, IReadOnlyList<InferenceTensor> outputs)
    {
        writer.WriteStartObject();
        writer.WriteString("model_name"u8, modelName);
        if (id is not null) writer.WriteString("id"u8, id);
        writer.WriteStartArray("outputs"u8);
        foreach (var output in outputs)
        {
            writer.WriteStartObject();
            writer.WriteString("name"u8, output.Name);
            writer.WriteStartArray("shape"u8);
            foreach (var dim in output.Shape) writer.WriteNumberValue(dim);
            writer.WriteEndArray();
            writer.WriteString("datatype"u8, output.Datatype);
            writer.WriteStartArray("data"u8);
            WriteData(writer, output.ElementType, output.Data);
            writer.WriteEndArray();
            writer.WriteEndObject();
        }
        writer.WriteEndArray();
        writer.WriteEndObject();
    }

    // By element type, not by array type: the runtime lets a ulong[] pass as a long[], a byte[] as an sbyte[] and so on.
    private static void WriteData(Utf8JsonWriter writer, TensorElementType type, Array data)
    {
        switch (type)
        {
            case TensorElementType.Float:
                foreach (var v in (float[])data)
                    if (float.IsFinite(v)) writer.WriteNumberValue(v);
                    else WriteNamedLiteral(writer, v);
                break;
            case TensorElementType.Double:
                foreach (var v in (double[])data)
                    if (double.IsFinite(v)) writer.WriteNumberValue(v);
                    else WriteNamedLiteral(writer, v);
                break;
            case TensorElementType.Int64: foreach (var v in (long[])data) writer.WriteNumberValue(v); break;
            case TensorElementType.Int32: foreach (var v in (int[])data) writer.WriteNumberValue(v); break;
            case TensorElementType.Int16: foreach (var v in (short[])data) writer.WriteNumberValue(v); break;
            case TensorElementType.Int8: foreach (var v in (sbyte[])data) writer.WriteNumberValue(v); break;
            case TensorElementType.UInt64: foreach (var v in (ulong[])data) writer.WriteNumberValue(v); break;
            case TensorElementType.UInt32: foreach (var v in (uint[])data) writer.WriteNumberValue(v); break;
            case TensorElementType.UInt16: foreach (var v in (ushort[])data) writer.WriteNumberValue(v); break;
            case TensorElementType.UInt8: foreach (var v in (byte[])data) writer.WriteNumberValue(v); break;
            case TensorElementType.Bool: foreach (var v in (bool[])data) writer.WriteBooleanValue(v); break;
            default: throw new NotSupportedException($"An output has element type {TensorTypes.ToV2(type)}, which has no JSON form here.");
        }
    }

    private static void WriteNamedLiteral(Utf8JsonWriter writer, double value) =>
        writer.WriteStringValue(double.IsNaN(value) ? "NaN"u8 : value > 0 ? "Infinity"u8 : "-Infinity"u8);

    private static string Kind(JsonElement e) => e.ValueKind.ToString().ToLowerInvariant();

    private static string Describe(JsonElement e)
    {
        var raw = e.GetRawText();
        return raw.Length <= 40 ? raw : raw[..40] + "…";
    }
}
