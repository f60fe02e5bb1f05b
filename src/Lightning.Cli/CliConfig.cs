using System.Globalization;
using YamlDotNet.RepresentationModel;

namespace Lightning;

/// <summary>
/// A LightningCLI configuration: a tree of sections (<c>trainer</c>, <c>model</c>, <c>data</c>, ...) whose leaves are the
/// strings written in YAML or on the command line, converted only when bound to the type that takes them. Lists hold
/// strings or sections (callbacks and loggers as <c>class_path</c> and <c>init_args</c>, as Lightning writes them).
/// </summary>
public sealed class CliConfig
{
    private CliConfig(Dictionary<string, object?> root) => Root = root;

    /// <summary>The sections: values are strings, nested dictionaries, lists, or null.</summary>
    public Dictionary<string, object?> Root { get; }

    /// <summary>An empty configuration.</summary>
    public static CliConfig Empty() => new(new Dictionary<string, object?>(StringComparer.Ordinal));

    /// <summary>Reads YAML (a mapping at the top); fails naming the file and the line on malformed input.</summary>
    public static CliConfig Parse(string yaml, string source)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(yaml));
        }
        catch (YamlDotNet.Core.YamlException e)
        {
            throw new CliException($"{source}: not valid YAML at line {e.Start.Line}, column {e.Start.Column}: {e.Message}");
        }
        if (stream.Documents.Count == 0) return Empty();
        return stream.Documents[0].RootNode switch
        {
            YamlMappingNode mapping => new CliConfig((Dictionary<string, object?>)FromNode(mapping)!),
            YamlScalarNode { Value: null or "" or "~" or "null" } => Empty(),
            _ => throw new CliException($"{source}: the top of a config must be a mapping (trainer:, model:, data:, ...)."),
        };
    }

    /// <summary>
    /// Sets a dotted key (<c>trainer.max_epochs</c>) to a value given on the command line; the value is read as YAML, so
    /// <c>[1, 2]</c> is a list and <c>null</c> is null.
    /// </summary>
    public void Set(string dottedKey, string value)
    {
        var parts = dottedKey.Split('.');
        if (parts.Any(string.IsNullOrEmpty)) throw new CliException($"--{dottedKey} is not a valid setting name: use --section.name=value.");
        var section = Root;
        foreach (var part in parts[..^1])
        {
            if (!section.TryGetValue(part, out var next) || next is not Dictionary<string, object?> child)
                section[part] = child = new Dictionary<string, object?>(StringComparer.Ordinal);
            section = child;
        }
        section[parts[^1]] = ValueFromYaml(value);
    }

    /// <summary>Adds every setting of <paramref name="other"/>, replacing those already here (sections merge key by key).</summary>
    public void Merge(CliConfig other) => Merge(Root, other.Root);

    /// <summary>The section <paramref name="name"/> (empty when absent); fails when it is not a mapping.</summary>
    public Dictionary<string, object?> Section(string name) => Root.TryGetValue(name, out var value) switch
    {
        false => new Dictionary<string, object?>(StringComparer.Ordinal),
        true when value is null => new Dictionary<string, object?>(StringComparer.Ordinal),
        true when value is Dictionary<string, object?> section => section,
        _ => throw new CliException($"'{name}' must be a section of settings (name: value lines), not '{value}'."),
    };

    /// <summary>The configuration as YAML that <see cref="Parse"/> reads back to the same tree.</summary>
    public string ToYaml()
    {
        var writer = new StringWriter(CultureInfo.InvariantCulture) { NewLine = "\n" };
        Write(writer, Root, 0);
        return writer.ToString();
    }

    private static void Merge(Dictionary<string, object?> into, Dictionary<string, object?> from)
    {
        foreach (var (key, value) in from)
        {
            if (value is Dictionary<string, object?> section && into.TryGetValue(key, out var existing) && existing is Dictionary<string, object?> target)
                Merge(target, section);
            else into[key] = value;
        }
    }

    private static object? ValueFromYaml(string text)
    {
        var stream = new YamlStream();
        try
        {
            stream.Load(new StringReader(text));
        }
        catch (YamlDotNet.Core.YamlException)
        {
            return text;
        }
        return stream.Documents.Count == 0 ? null : FromNode(stream.Documents[0].RootNode);
    }

    private static object? FromNode(YamlNode node) => node switch
    {
        YamlScalarNode scalar => scalar.Style is YamlDotNet.Core.ScalarStyle.Plain && scalar.Value is null or "" or "~" or "null" ? null : scalar.Value,
        YamlSequenceNode sequence => sequence.Children.Select(FromNode).ToList(),
        YamlMappingNode mapping => mapping.Children.ToDictionary(p => ((YamlScalarNode)p.Key).Value ?? "", p => FromNode(p.Value), StringComparer.Ordinal),
        _ => throw new CliException($"unsupported YAML node {node.NodeType}"),
    };

    private static void Write(TextWriter writer, Dictionary<string, object?> section, int indent)
    {
        var pad = new string(' ', indent);
        foreach (var (key, value) in section)
        {
            switch (value)
            {
                case Dictionary<string, object?> child when child.Count > 0:
                    writer.WriteLine($"{pad}{key}:");
                    Write(writer, child, indent + 2);
                    break;
                case Dictionary<string, object?>:
                    writer.WriteLine($"{pad}{key}: {{}}");
                    break;
                case List<object?> list when list.Count == 0:
                    writer.WriteLine($"{pad}{key}: []");
                    break;
                case List<object?> list:
                    writer.WriteLine($"{pad}{key}:");
                    foreach (var item in list)
                    {
                        if (item is Dictionary<string, object?> entry && entry.Count > 0)
                        {
                            // The first key on the dash line, the rest under it.
                            var first = true;
                            foreach (var (entryKey, entryValue) in entry)
                            {
                                var single = new Dictionary<string, object?>(StringComparer.Ordinal) { [entryKey] = entryValue };
                                var text = new StringWriter(CultureInfo.InvariantCulture) { NewLine = "\n" };
                                Write(text, single, indent + 4);
                                var lines = text.ToString().TrimEnd('\n').Split('\n');
                                if (first) lines[0] = $"{pad}  - {lines[0].TrimStart()}";
                                foreach (var line in lines) writer.WriteLine(line);
                                first = false;
                            }
                        }
                        else writer.WriteLine($"{pad}  - {Scalar(item)}");
                    }
                    break;
                default:
                    writer.WriteLine($"{pad}{key}: {Scalar(value)}");
                    break;
            }
        }
    }

    private static string Scalar(object? value) => value switch
    {
        null => "null",
        string s when NeedsQuotes(s) => "'" + s.Replace("'", "''", StringComparison.Ordinal) + "'",
        string s => s,
        _ => Convert.ToString(value, CultureInfo.InvariantCulture) ?? "null",
    };

    private static bool NeedsQuotes(string s) =>
        s.Length == 0 || s is "null" or "~" || s.Trim() != s || s.IndexOfAny([':', '#', '[', ']', '{', '}', ',', '&', '*', '!', '|', '>', '\'', '"', '%', '@', '`']) >= 0
        || s.StartsWith('-') && !double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out _);
}
