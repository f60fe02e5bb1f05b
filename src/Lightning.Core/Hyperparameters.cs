using System.Collections;
using System.Text.Json;

namespace Lightning;

/// <summary>Hyperparameters are plain data (numbers, strings, booleans and lists of them) so they survive JSON and YAML.</summary>
internal static class Hyperparameters
{
    public static void EnsureSerializable(string name, object? value)
    {
        switch (value)
        {
            case null or string or bool or Enum: return;
            case var number when number.GetType().IsPrimitive || number is decimal: return;
            case IDictionary dictionary:
                foreach (DictionaryEntry entry in dictionary) EnsureSerializable($"{name}.{entry.Key}", entry.Value);
                return;
            case IEnumerable items:
                int i = 0;
                foreach (var item in items) EnsureSerializable($"{name}[{i++}]", item);
                return;
            default:
                throw new ArgumentException(
                    $"Hyperparameter '{name}' is a {value.GetType().Name}; hyperparameters must be numbers, strings, booleans, " +
                    "enums, or lists and dictionaries of them. Pass modules and tensors to LoadFromCheckpoint as arguments instead.",
                    name);
        }
    }

    /// <summary>Saved values as plain .NET data, with the given constructor arguments taking precedence where they are plain data too.</summary>
    public static Dictionary<string, object?> Materialize(IReadOnlyDictionary<string, JsonElement> saved,
        IReadOnlyDictionary<string, object?> given)
    {
        var result = saved.ToDictionary(p => p.Key, p => ToPlain(p.Value));
        foreach (var (name, value) in given)
            if (saved.ContainsKey(name)) result[name] = value;
        return result;
    }

    public static Dictionary<string, JsonElement> ToJson(IReadOnlyDictionary<string, object?> hparams) =>
        hparams.ToDictionary(p => p.Key, p => JsonSerializer.SerializeToElement(p.Value));

    private static object? ToPlain(JsonElement element) => element.ValueKind switch
    {
        JsonValueKind.String => element.GetString(),
        JsonValueKind.Number => element.TryGetInt64(out var l) ? l : element.GetDouble(),
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.Array => element.EnumerateArray().Select(ToPlain).ToList(),
        JsonValueKind.Object => element.EnumerateObject().ToDictionary(p => p.Name, p => ToPlain(p.Value)),
        _ => null,
    };
}
