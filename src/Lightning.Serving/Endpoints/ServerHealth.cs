using System.Text.Json.Serialization;

namespace Lightning.Serving;

/// <summary>The v2 server liveness and readiness bodies.</summary>
internal sealed record ServerHealth(
    [property: JsonPropertyName("live")] bool Live,
    [property: JsonPropertyName("ready"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] bool? Ready);
