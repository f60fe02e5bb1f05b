using System.Collections;
using System.Reflection;
using System.Text.Json;

namespace Lightning;

/// <summary>Named arguments given as an anonymous object or a dictionary, and constructor binding by name.</summary>
internal static class Arguments
{
    public static Dictionary<string, object?> ToDictionary(object values, string parameterName)
    {
        if (values is IEnumerable<KeyValuePair<string, object?>> pairs) return pairs.ToDictionary(p => p.Key, p => p.Value);
        if (values is IDictionary dictionary)
            return dictionary.Keys.Cast<object>().ToDictionary(k => k.ToString()!, k => dictionary[k]);
        var properties = values.GetType().GetProperties(BindingFlags.Public | BindingFlags.Instance);
        if (properties.Length == 0 || values is string || values.GetType().IsPrimitive)
            throw new ArgumentException(
                $"{parameterName} must be an anonymous object such as new {{ lr = 0.001 }} or a dictionary of names to values; got {values.GetType().Name}.",
                parameterName);
        return properties.ToDictionary(p => p.Name, p => p.GetValue(values));
    }

    /// <summary>Calls the public constructor of <paramref name="type"/> that the given and saved values fill completely.</summary>
    public static object Construct(Type type, IReadOnlyDictionary<string, object?> given,
        IReadOnlyDictionary<string, JsonElement> saved, string source)
    {
        var constructors = type.GetConstructors().OrderByDescending(c => c.GetParameters().Length).ToList();
        if (constructors.Count == 0)
            throw new InvalidOperationException($"Cannot rebuild {type.Name} from '{source}': it has no public constructor.");

        var problems = new List<string>();
        foreach (var constructor in constructors)
        {
            if (TryBind(constructor, given, saved, out var values, out var problem)) return constructor.Invoke(values);
            problems.Add($"({Describe(constructor)}): {problem}");
        }
        throw new InvalidOperationException(
            $"Cannot rebuild {type.Name} from '{source}'. Saved hyperparameters: [{string.Join(", ", saved.Keys)}]; " +
            $"given arguments: [{string.Join(", ", given.Keys)}]. " + string.Join(" ", problems) +
            $" Pass what is missing, e.g. LoadFromCheckpoint<{type.Name}>(path, new {{ name = value }}).");
    }

    private static bool TryBind(ConstructorInfo constructor, IReadOnlyDictionary<string, object?> given,
        IReadOnlyDictionary<string, JsonElement> saved, out object?[] values, out string problem)
    {
        var parameters = constructor.GetParameters();
        values = new object?[parameters.Length];
        var unused = given.Keys.Except(parameters.Select(p => p.Name!)).ToList();
        if (unused.Count > 0)
        {
            problem = $"no parameter named {string.Join(", ", unused.Select(u => $"'{u}'"))}.";
            return false;
        }
        for (int i = 0; i < parameters.Length; i++)
        {
            var p = parameters[i];
            if (given.TryGetValue(p.Name!, out var value))
            {
                if (value is not null && !p.ParameterType.IsInstanceOfType(value))
                {
                    problem = $"argument '{p.Name}' is a {value.GetType().Name}, the parameter is a {p.ParameterType.Name}.";
                    return false;
                }
                values[i] = value;
            }
            else if (saved.TryGetValue(p.Name!, out var element))
            {
                try { values[i] = element.Deserialize(p.ParameterType); }
                catch (JsonException e)
                {
                    problem = $"saved hyperparameter '{p.Name}' = {element.GetRawText()} is not a {p.ParameterType.Name} ({e.Message}).";
                    return false;
                }
            }
            else if (p.HasDefaultValue) values[i] = p.DefaultValue;
            else
            {
                problem = $"'{p.Name}' is neither a saved hyperparameter nor a given argument.";
                return false;
            }
        }
        problem = "";
        return true;
    }

    private static string Describe(ConstructorInfo constructor) =>
        string.Join(", ", constructor.GetParameters().Select(p => $"{p.ParameterType.Name} {p.Name}"));
}
