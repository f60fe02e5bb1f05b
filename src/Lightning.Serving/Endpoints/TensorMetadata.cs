using System.Text.Json.Serialization;

namespace Lightning.Serving;

/// <summary>A tensor of the v2 model metadata.</summary>
internal sealed record TensorMetadata(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("datatype")] string Datatype,
    [property: JsonPropertyName("shape")] long[] Shape);
