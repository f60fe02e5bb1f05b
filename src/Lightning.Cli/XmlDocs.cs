using System.Reflection;
using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace Lightning;

/// <summary>
/// Help texts from the XML documentation files that the compiler writes beside each assembly (<c>Name.xml</c>): a
/// property's summary, or a constructor parameter's text. Missing files or entries give null.
/// </summary>
internal static partial class XmlDocs
{
    private static readonly Dictionary<Assembly, Dictionary<string, XElement>?> s_files = [];

    public static string? Summary(PropertyInfo property) =>
        Text(Member(property.DeclaringType!.Assembly, $"P:{Name(property.DeclaringType)}.{property.Name}")?.Element("summary"));

    public static string? Parameter(ConstructorInfo constructor, ParameterInfo parameter)
    {
        var members = Members(constructor.DeclaringType!.Assembly);
        if (members is null) return null;
        var prefix = $"M:{Name(constructor.DeclaringType)}.#ctor";
        var text = members.Where(m => m.Key.StartsWith(prefix, StringComparison.Ordinal))
            .Select(m => m.Value.Elements("param").FirstOrDefault(p => (string?)p.Attribute("name") == parameter.Name))
            .FirstOrDefault(p => p is not null);
        // A primary constructor's parameters are documented on the type.
        text ??= Member(constructor.DeclaringType.Assembly, $"T:{Name(constructor.DeclaringType)}")?.Elements("param")
            .FirstOrDefault(p => (string?)p.Attribute("name") == parameter.Name);
        return Text(text);
    }

    private static XElement? Member(Assembly assembly, string name) =>
        Members(assembly) is { } members && members.TryGetValue(name, out var member) ? member : null;

    private static Dictionary<string, XElement>? Members(Assembly assembly)
    {
        lock (s_files)
        {
            if (s_files.TryGetValue(assembly, out var cached)) return cached;
            Dictionary<string, XElement>? members = null;
            var file = string.IsNullOrEmpty(assembly.Location) ? null : Path.ChangeExtension(assembly.Location, ".xml");
            if (file is not null && File.Exists(file))
            {
                try
                {
                    members = XDocument.Load(file).Root?.Element("members")?.Elements("member")
                        .Where(m => m.Attribute("name") is not null)
                        .GroupBy(m => (string)m.Attribute("name")!)
                        .ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
                }
                catch (System.Xml.XmlException)
                {
                    // A damaged documentation file only costs the help texts.
                }
            }
            return s_files[assembly] = members;
        }
    }

    private static string Name(Type type) => (type.FullName ?? type.Name).Replace('+', '.');

    private static string? Text(XElement? element)
    {
        if (element is null) return null;
        // <see cref="T:X.Y"/> and <c>code</c> keep their last name or their text.
        var text = string.Concat(element.Nodes().Select(node => node switch
        {
            XText t => t.Value,
            XElement e when e.Attribute("cref") is { } cref => ((string)cref).Split('.', ':')[^1],
            XElement e when e.Attribute("name") is { } name => (string)name,
            XElement e => e.Value,
            _ => "",
        }));
        return Whitespace().Replace(text, " ").Trim();
    }

    [GeneratedRegex(@"\s+")]
    private static partial Regex Whitespace();
}
