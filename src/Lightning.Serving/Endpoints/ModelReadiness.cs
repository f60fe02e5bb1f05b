using System.Text.Json.Serialization;

namespace Lightning.Serving;

/// <summary>The v2 model readiness body.</summary>
internal sealed record ModelReadiness([property: JsonPropertyName("name")] string Name, [property: JsonPropertyName("ready")] bool Ready);
