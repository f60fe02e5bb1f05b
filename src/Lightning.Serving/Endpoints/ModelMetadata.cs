using System.Text.Json.Serialization;

namespace Lightning.Serving;

/// <summary>The v2 model metadata body, with the execution provider in use under <c>parameters</c>.</summary>
internal sealed record ModelMetadata(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("versions")] string[] Versions,
    [property: JsonPropertyName("platform")] string Platform,
    [property: JsonPropertyName("inputs")] IReadOnlyList<TensorMetadata> Inputs,
    [property: JsonPropertyName("outputs")] IReadOnlyList<TensorMetadata> Outputs,
    [property: JsonPropertyName("parameters")] IReadOnlyDictionary<string, object> Parameters);
