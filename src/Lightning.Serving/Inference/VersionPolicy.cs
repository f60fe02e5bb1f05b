using System.Text.Json;

namespace Lightning.Serving;

/// <summary>Which version folders of a repository model serve, as Triton's <c>version_policy</c>: the latest N, all, or specific ones.</summary>
internal sealed record VersionPolicy(string Kind, int Count, long[] Specific)
{
    public static VersionPolicy Latest(int count) => new("latest", count, []);

    public static VersionPolicy All { get; } = new("all", 0, []);

    /// <summary>The versions to serve among <paramref name="available"/> (ascending).</summary>
    public IEnumerable<long> Select(IReadOnlyList<long> available) => Kind switch
    {
        "all" => available,
        "specific" => available.Where(v => Specific.Contains(v)),
        _ => available.Skip(Math.Max(0, available.Count - Count)),
    };

    public override string ToString() => Kind switch
    {
        "all" => "all",
        "specific" => $"specific [{string.Join(", ", Specific)}]",
        _ => $"latest {Count}",
    };

    /// <exception cref="FormatException">Not one of the three forms; the message shows them.</exception>
    public static VersionPolicy Parse(JsonElement policy)
    {
        const string Forms = "{\"latest\": {\"num_versions\": 1}}, {\"all\": {}} or {\"specific\": {\"versions\": [1, 3]}}";
        if (policy.ValueKind != JsonValueKind.Object || policy.EnumerateObject().Count() != 1)
            throw new FormatException($"version_policy = {policy.GetRawText()} is not allowed; use one of {Forms}.");
        var only = policy.EnumerateObject().First();
        switch (only.Name)
        {
            case "all":
                return All;
            case "latest" when only.Value.ValueKind == JsonValueKind.Object:
                if (!only.Value.TryGetProperty("num_versions", out var n)) return Latest(1);
                return n.ValueKind == JsonValueKind.Number && n.TryGetInt32(out var count) && count >= 1 ? Latest(count)
                    : throw new FormatException($"version_policy.latest.num_versions = {n.GetRawText()} is not allowed; it is an integer of at least 1.");
            case "specific" when only.Value.ValueKind == JsonValueKind.Object && only.Value.TryGetProperty("versions", out var versions)
                                 && versions.ValueKind == JsonValueKind.Array:
                var list = new List<long>();
                foreach (var v in versions.EnumerateArray())
                    list.Add(v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out var number) && number >= 1 ? number
                        : throw new FormatException($"version_policy.specific.versions holds {v.GetRawText()}; versions are integers of at least 1."));
                return new VersionPolicy("specific", 0, [.. list]);
            default:
                throw new FormatException($"version_policy = {policy.GetRawText()} is not allowed; use one of {Forms}.");
        }
    }
}
