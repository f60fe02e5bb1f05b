using System.Text.Json.Serialization;

namespace Lightning.Serving;

/// <summary>The v2 error body, <c>{"error": "..."}</c>.</summary>
internal sealed record InferenceError([property: JsonPropertyName("error")] string Error);
