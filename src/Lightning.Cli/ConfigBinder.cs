using System.Globalization;
using System.Reflection;
using System.Text;

namespace Lightning;

/// <summary>
/// Turns config values (strings, lists, sections) into .NET values: <see cref="TrainerOptions"/> properties and
/// constructor arguments are found by their snake_case names (<c>max_epochs</c>, <c>batch_size</c>), as Lightning writes
/// them; callbacks and loggers are built from <c>class_path</c> and <c>init_args</c>. Every failure names the setting,
/// the value and what is allowed.
/// </summary>
internal static class ConfigBinder
{
    /// <summary>Lightning's name for a .NET member: <c>MaxEpochs</c> and <c>maxEpochs</c> become <c>max_epochs</c>, <c>CheckValEveryNEpoch</c> <c>check_val_every_n_epoch</c>.</summary>
    public static string SnakeCase(string name)
    {
        var result = new StringBuilder(name.Length + 8);
        for (int i = 0; i < name.Length; i++)
        {
            var c = name[i];
            if (char.IsUpper(c) && i > 0 && (char.IsLower(name[i - 1]) || char.IsDigit(name[i - 1]) || i + 1 < name.Length && char.IsLower(name[i + 1])))
                result.Append('_');
            result.Append(char.ToLowerInvariant(c));
        }
        return result.ToString();
    }

    /// <summary>The trainer's settings that a config may set, by snake_case name (<c>logger</c> is Lightning's name for the loggers).</summary>
    public static IReadOnlyDictionary<string, PropertyInfo> TrainerSettings { get; } = typeof(TrainerOptions)
        .GetProperties(BindingFlags.Public | BindingFlags.Instance).Where(p => p.CanWrite)
        .ToDictionary(p => p.Name == nameof(TrainerOptions.Loggers) ? "logger" : SnakeCase(p.Name), StringComparer.Ordinal);

    /// <summary>Trainer options from the <c>trainer</c> section (the defaults where it says nothing).</summary>
    public static TrainerOptions Trainer(Dictionary<string, object?> section)
    {
        var options = new TrainerOptions();
        foreach (var (key, value) in section)
        {
            var name = key == "loggers" ? "logger" : key;
            if (!TrainerSettings.TryGetValue(name, out var property))
                throw new CliException($"trainer.{key} is not a trainer setting; the settings are: {string.Join(", ", TrainerSettings.Keys.Order())}.");
            property.SetValue(options, Convert(value, property.PropertyType, $"trainer.{key}"));
        }
        return options;
    }

    /// <summary>The constructor <see cref="Construct"/> uses: the public one with the most parameters.</summary>
    public static ConstructorInfo ConstructorOf(Type type) =>
        type.GetConstructors().OrderByDescending(c => c.GetParameters().Length).FirstOrDefault()
        ?? throw new CliException($"{type.Name} has no public constructor, so the CLI cannot build it.");

    /// <summary>Builds <paramref name="type"/> from a section: each constructor parameter from the setting of its snake_case name, or its default.</summary>
    public static object Construct(Type type, Dictionary<string, object?> section, string prefix)
    {
        var constructor = ConstructorOf(type);
        var parameters = constructor.GetParameters();
        var names = parameters.ToDictionary(p => SnakeCase(p.Name!), StringComparer.Ordinal);
        // Lightning spells some arguments without underscores (dirpath): those match too.
        var given = new Dictionary<string, (string Key, object? Value)>(StringComparer.Ordinal);
        foreach (var (key, value) in section)
        {
            var name = names.Keys.FirstOrDefault(n => n == key) ?? names.Keys.FirstOrDefault(n => n.Replace("_", "", StringComparison.Ordinal) == key.Replace("_", "", StringComparison.Ordinal))
                ?? throw new CliException($"{prefix}.{key} is not an argument of {type.Name}; its arguments are: {(names.Count == 0 ? "none" : string.Join(", ", names.Keys))}.");
            given[name] = (key, value);
        }
        var arguments = parameters.Select(p =>
        {
            var key = SnakeCase(p.Name!);
            if (given.TryGetValue(key, out var setting)) return Convert(setting.Value, p.ParameterType, $"{prefix}.{setting.Key}");
            if (p.HasDefaultValue) return p.DefaultValue;
            throw new CliException($"{prefix}.{key} is required by {type.Name}: set it in the config or with --{prefix}.{key}=<{FriendlyName(p.ParameterType)}>.");
        }).ToArray();
        try
        {
            return constructor.Invoke(arguments);
        }
        catch (TargetInvocationException e) when (e.InnerException is ArgumentException argument)
        {
            throw new CliException($"{prefix}: {argument.Message}");
        }
    }

    /// <summary>A config value as <paramref name="type"/>; <paramref name="key"/> names it in errors.</summary>
    public static object? Convert(object? value, Type type, string key)
    {
        var underlying = Nullable.GetUnderlyingType(type);
        if (value is null)
        {
            if (underlying is not null || !type.IsValueType) return null;
            throw new CliException($"{key} = null is not allowed: it needs {Article(FriendlyName(type))}.");
        }
        type = underlying ?? type;
        if (type == typeof(object)) return value;
        if (ElementType(type) is { } element && value is List<object?> list)
        {
            var array = Array.CreateInstance(element, list.Count);
            for (int i = 0; i < list.Count; i++) array.SetValue(Convert(list[i], element, $"{key}[{i}]"), i);
            return array;
        }
        if (value is List<object?> items && Implicit(type, typeof(int[])) is { } fromIds)
            return fromIds.Invoke(null, [items.Select((v, i) => (int)Convert(v, typeof(int), $"{key}[{i}]")!).ToArray()]);
        if (value is Dictionary<string, object?> section) return Instance(section, type, key);
        // A bare type name for a class setting (a callback, a logger): built with its default arguments.
        if (value is string typeName && type.IsClass && type != typeof(string) && Implicit(type, typeof(string)) is null)
            return Instance(new Dictionary<string, object?>(StringComparer.Ordinal) { ["class_path"] = typeName }, type, key);
        if (value is not string text) throw new CliException($"{key} = {value} is not allowed: it needs {Article(FriendlyName(type))}.");
        return Scalar(text, type, key);
    }

    /// <summary>The text a value is written as in a config, or null when it has no such form (an object built in code).</summary>
    public static object? ToConfig(object? value) => value switch
    {
        null => null,
        string s => s,
        bool b => b ? "true" : "false",
        double d => Real(d),
        float f => Real(f),
        BatchLimit { Fraction: { } fraction } => Real(fraction),
        TimeSpan t => t.ToString("c", CultureInfo.InvariantCulture),
        Enum e => SnakeCase(e.ToString()),
        Devices { Ids: { } ids } => ids.Select(i => (object?)i.ToString(CultureInfo.InvariantCulture)).ToList(),
        System.Collections.IEnumerable sequence when sequence.Cast<object?>().Select(ToConfig).ToList() is var list && !list.Contains(Unrepresentable) => list,
        System.Collections.IEnumerable => Unrepresentable,
        IFormattable formattable when value.GetType().IsPrimitive => formattable.ToString(null, CultureInfo.InvariantCulture),
        _ when Implicit(value.GetType(), typeof(string)) is not null || value.GetType().IsValueType => System.Convert.ToString(value, CultureInfo.InvariantCulture),
        _ => Unrepresentable,
    };

    /// <summary>Marks a value <see cref="ToConfig"/> cannot write.</summary>
    public static readonly object Unrepresentable = new();

    private static string Real(double value)
    {
        var text = value.ToString("R", CultureInfo.InvariantCulture);
        // "1" would read back as a count where a fraction was meant.
        return text.Contains('.') || text.Contains('E') || text.Contains("Infinity") || text == "NaN" ? text : text + ".0";
    }

    private static object Instance(Dictionary<string, object?> section, Type baseType, string key)
    {
        if (!section.TryGetValue("class_path", out var classPath) || classPath is not string name)
            throw new CliException($"{key} needs class_path (the type to build) and optionally init_args (its constructor arguments).");
        var extra = section.Keys.Where(k => k is not ("class_path" or "init_args")).ToList();
        if (extra.Count > 0) throw new CliException($"{key}.{extra[0]} is not allowed: an entry has class_path and init_args only.");
        var arguments = section.TryGetValue("init_args", out var init) ? init switch
        {
            null => new Dictionary<string, object?>(StringComparer.Ordinal),
            Dictionary<string, object?> args => args,
            _ => throw new CliException($"{key}.init_args must be a section of constructor arguments."),
        } : new Dictionary<string, object?>(StringComparer.Ordinal);
        return Construct(FindType(name, baseType, key), arguments, $"{key}.init_args");
    }

    private static Type FindType(string name, Type baseType, string key)
    {
        var candidates = AppDomain.CurrentDomain.GetAssemblies()
            .Where(a => !a.IsDynamic)
            .SelectMany(a =>
            {
                try
                {
                    return a.GetExportedTypes();
                }
                catch (Exception e) when (e is ReflectionTypeLoadException or NotSupportedException or FileNotFoundException)
                {
                    return [];
                }
            })
            .Where(t => !t.IsAbstract && baseType.IsAssignableFrom(t) && t.GetConstructors().Length > 0)
            .ToList();
        var match = candidates.FirstOrDefault(t => t.FullName == name) ?? candidates.FirstOrDefault(t => t.Name == name);
        return match ?? throw new CliException(
            $"{key}.class_path = {name} is not allowed: it must name a {FriendlyName(baseType)} type; known: {string.Join(", ", candidates.Select(t => t.Name).Order())}.");
    }

    private static object Scalar(string text, Type type, string key)
    {
        try
        {
            if (type == typeof(string)) return text;
            if (type == typeof(bool))
                return text.ToLowerInvariant() switch
                {
                    "true" or "yes" or "on" => true,
                    "false" or "no" or "off" => false,
                    _ => throw new FormatException(),
                };
            if (type.IsEnum)
            {
                var normalized = text.Replace("_", "", StringComparison.Ordinal);
                return Enum.GetNames(type).FirstOrDefault(n => string.Equals(n, normalized, StringComparison.OrdinalIgnoreCase)) is { } match
                    ? Enum.Parse(type, match)
                    : throw new CliException($"{key} = {text} is not allowed: use one of {string.Join(", ", Enum.GetNames(type).Select(SnakeCase))}.");
            }
            if (type == typeof(TimeSpan)) return ParseTime(text);
            if (type.IsPrimitive || type == typeof(decimal)) return System.Convert.ChangeType(text, type, CultureInfo.InvariantCulture);
            // Types with implicit conversions (Devices, BatchLimit, StrategyChoice, PrecisionChoice): a count, a fraction or a name.
            if (Implicit(type, typeof(int)) is { } fromInt && int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var count))
                return fromInt.Invoke(null, [count])!;
            if (Implicit(type, typeof(double)) is { } fromDouble && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var fraction))
                return fromDouble.Invoke(null, [fraction])!;
            if (Implicit(type, typeof(string)) is { } fromString) return fromString.Invoke(null, [text])!;
        }
        catch (Exception e) when (e is FormatException or OverflowException or InvalidCastException)
        {
            throw new CliException($"{key} = {text} is not allowed: it needs {Article(FriendlyName(type))}.");
        }
        catch (TargetInvocationException e) when (e.InnerException is ArgumentException argument)
        {
            throw new CliException($"{key} = {text} is not allowed: {argument.Message}");
        }
        throw new CliException($"{key} = {text} is not allowed: a {FriendlyName(type)} cannot be given as text; set it in code.");
    }

    /// <summary>Lightning's <c>DD:HH:MM:SS</c>, or .NET's <c>[d.]hh:mm:ss</c>.</summary>
    private static TimeSpan ParseTime(string text)
    {
        var parts = text.Split(':');
        if (parts.Length == 4 && parts.All(p => int.TryParse(p, NumberStyles.None, CultureInfo.InvariantCulture, out _)))
            return new TimeSpan(int.Parse(parts[0], CultureInfo.InvariantCulture), int.Parse(parts[1], CultureInfo.InvariantCulture),
                int.Parse(parts[2], CultureInfo.InvariantCulture), int.Parse(parts[3], CultureInfo.InvariantCulture));
        return TimeSpan.Parse(text, CultureInfo.InvariantCulture);
    }

    private static MethodInfo? Implicit(Type type, Type from) =>
        type.GetMethods(BindingFlags.Public | BindingFlags.Static)
            .FirstOrDefault(m => m.Name == "op_Implicit" && m.ReturnType == type && m.GetParameters() is [var p] && p.ParameterType == from);

    private static Type? ElementType(Type type)
    {
        if (type.IsArray) return type.GetElementType();
        if (type.IsGenericType && type.GetGenericTypeDefinition() is var definition
            && (definition == typeof(IReadOnlyList<>) || definition == typeof(IList<>) || definition == typeof(IEnumerable<>) || definition == typeof(List<>)))
            return type.GetGenericArguments()[0];
        return null;
    }

    public static string FriendlyName(Type type) => (Nullable.GetUnderlyingType(type) ?? type) switch
    {
        var t when t == typeof(int) || t == typeof(long) => "integer",
        var t when t == typeof(double) || t == typeof(float) => "number",
        var t when t == typeof(bool) => "true or false",
        var t when t == typeof(string) => "text",
        var t when t == typeof(TimeSpan) => "duration (DD:HH:MM:SS)",
        var t when ElementType(t) is { } e => $"list of {FriendlyName(e)}",
        var t => t.Name,
    };

    private static string Article(string noun) =>
        noun.StartsWith("true", StringComparison.Ordinal) || noun.StartsWith("list", StringComparison.Ordinal) || noun == "text" ? noun
        : ("aeiouAEIOU".Contains(noun[0]) ? "an " : "a ") + noun;
}
