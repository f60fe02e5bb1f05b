using YamlDotNet.Serialization;

namespace Lightning.Loggers;

/// <summary>Writes <c>hparams.yaml</c>, as both of Lightning's file loggers do.</summary>
internal static class HparamsYaml
{
    public const string FileName = "hparams.yaml";

    // Building a serializer reflects over YamlDotNet's type handling: done once, not once per fit.
    private static readonly ISerializer Serializer = new SerializerBuilder().Build();

    public static void Write(string logDir, IReadOnlyDictionary<string, object?> hparams)
    {
        var yaml = hparams.Count == 0 ? "{}\n" : Serializer.Serialize(hparams.ToDictionary(p => p.Key, p => p.Value));
        var path = Path.Combine(logDir, FileName);
        // The CSV and TensorBoard loggers share one folder by default: the second finds the file already written.
        if (File.Exists(path) && File.ReadAllText(path) == yaml) return;
        Directory.CreateDirectory(logDir);
        var temp = path + ".tmp";
        File.WriteAllText(temp, yaml);
        File.Move(temp, path, overwrite: true);
    }
}
