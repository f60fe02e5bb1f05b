using System.Reflection;
using System.Text.Json.Nodes;

namespace Lightning.Metrics;

/// <summary>
/// The metrics a module holds in its fields (as torchmetrics metrics are child modules found by attribute), keyed by
/// field name: the trainer connects them to a multi-process strategy, and checkpoints keep the <see cref="Metric.Persistent"/> ones.
/// </summary>
internal static class ModuleMetrics
{
    /// <summary>Every metric in an instance field of <paramref name="module"/>'s type or its bases, by field (or auto-property) name.</summary>
    public static IEnumerable<(string Key, Metric Metric)> Find(LightningModule module)
    {
        var seen = new HashSet<string>();
        for (var type = module.GetType(); type is not null && type != typeof(LightningModule); type = type.BaseType)
            foreach (var field in type.GetFields(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
                if (typeof(Metric).IsAssignableFrom(field.FieldType) && field.GetValue(module) is Metric metric && seen.Add(KeyOf(field.Name)))
                    yield return (KeyOf(field.Name), metric);
    }

    /// <summary>The states of the persistent metrics, by key; null when there are none.</summary>
    public static JsonObject? Save(LightningModule module)
    {
        var saved = new JsonObject();
        foreach (var (key, metric) in Find(module).Where(m => m.Metric.Persistent)) saved[key] = metric.SaveState();
        return saved.Count == 0 ? null : saved;
    }

    /// <summary>Restores each persistent metric that <paramref name="saved"/> holds a state for; <paramref name="what"/> names the checkpoint in errors.</summary>
    public static void Load(LightningModule module, JsonObject? saved, string what)
    {
        if (saved is null) return;
        foreach (var (key, metric) in Find(module).Where(m => m.Metric.Persistent))
            if (saved[key] is JsonObject state) metric.LoadState(state, $"{what}, metric '{key}'");
    }

    // An auto-property's backing field is "<Name>k__BackingField".
    private static string KeyOf(string field) =>
        field.StartsWith('<') && field.IndexOf('>') is > 1 and var end ? field[1..end] : field;
}
