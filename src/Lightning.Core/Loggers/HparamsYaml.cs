using YamlDotNet.Serialization;

namespace Lightning.Loggers;

/// <summary>Writes <c>hparams.yaml</c>, as both of Lightning's file loggers do.</summary>
internal static class HparamsYaml
{
    public const string FileName = "hparams.yaml";

    public static void Write(string logDir, IReadOnlyDictionary<string, object?> hparams)
    {
        Directory.CreateDirectory(logDir);
        var yaml = new SerializerBuilder().Build().Serialize(hparams.ToDictionary(p => p.Key, p => p.Value));
        var path = Path.Combine(logDir, FileName);
        var temp = path + ".tmp";
        File.WriteAllText(temp, hparams.Count == 0 ? "{}\n" : yaml);
        File.Move(temp, path, overwrite: true);
    }
}
