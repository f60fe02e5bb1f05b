using System.Text.Json.Serialization;

namespace Lightning.Serving;

/// <summary>One version of a repository model in <c>POST /v2/repository/index</c>: READY or UNAVAILABLE, and why not.</summary>
internal sealed record RepositoryIndexEntry(
    [property: JsonPropertyName("name")] string Name,
    [property: JsonPropertyName("version")] string Version,
    [property: JsonPropertyName("state")] string State,
    [property: JsonPropertyName("reason")] string Reason);
