using System.Text.Json.Serialization;

namespace Lightning.Serving;

/// <summary>The v2 server metadata body, <c>{"name", "version", "extensions"}</c>.</summary>
internal sealed record ServerMetadata(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("version")] string Version,
    [property: JsonPropertyName("extensions")] IReadOnlyList<string> Extensions);
