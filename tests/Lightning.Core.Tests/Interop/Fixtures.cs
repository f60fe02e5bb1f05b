using System.Runtime.CompilerServices;
using System.Text.Json;

namespace Lightning.Core.Tests.Interop;

/// <summary>The interop fixtures: where they are, and the values scripts/make-interop-fixtures.py wrote beside them.</summary>
internal static class Fixtures
{
    public static string Path(string name) => System.IO.Path.Combine(AppContext.BaseDirectory, "Interop", "Fixtures", name);

    /// <summary>The fixture folder in the source tree, where the reverse fixtures are (re)written.</summary>
    public static string SourcePath(string name, [CallerFilePath] string here = "") =>
        System.IO.Path.Combine(System.IO.Path.GetDirectoryName(here)!, "Fixtures", name);

    public static JsonElement Expected { get; } = JsonDocument.Parse(File.ReadAllText(Path("expected.json"))).RootElement;

    public static double[] Values(JsonElement element) => element.EnumerateArray().Select(v => v.GetDouble()).ToArray();
}
