using System.Text.Json;
using System.Text.Json.Serialization;

namespace Lightning.Serving;

/// <summary>The JSON settings the v2 bodies are read and written with.</summary>
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
}
