namespace Lightning.Interop;

/// <summary>
/// A Python object from a pickle whose class this library does not rebuild (Lightning's <c>AttributeDict</c>, an
/// <c>argparse.Namespace</c>, a user class): its class name, constructor arguments, and whatever dict items or
/// <c>__setstate__</c> state the pickle gave it, so dict-like objects can still be read as dicts.
/// </summary>
internal sealed class PythonObject(string className, object?[] arguments)
{
    public string ClassName { get; } = className;

    public object?[] Arguments { get; } = arguments;

    /// <summary>Items set with SETITEM(S), as on a dict subclass.</summary>
    public Dictionary<object, object?> Items { get; } = new();

    /// <summary>Items appended with APPEND(S), as on a list subclass.</summary>
    public List<object?> ListItems { get; } = [];

    /// <summary>The state given by BUILD (usually the instance's <c>__dict__</c>).</summary>
    public object? State { get; set; }

    /// <summary>The object as a dict: its items, else its state when that is a dict, else null.</summary>
    public Dictionary<object, object?>? AsDictionary() =>
        Items.Count > 0 ? Items : State as Dictionary<object, object?> ?? (Arguments.Length == 0 ? Items : null);

    public override string ToString() => ClassName;
}
