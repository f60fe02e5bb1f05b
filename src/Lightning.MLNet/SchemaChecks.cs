using Microsoft.ML;
using Microsoft.ML.Data;

namespace Lightning.MLNet;

/// <summary>Column checks with ML.NET's wording: "Schema mismatch for input column 'X': expected …, got …".</summary>
internal static class SchemaChecks
{
    public static ArgumentOutOfRangeException Mismatch(string column, string expected, string got) =>
        new(column, $"Schema mismatch for input column '{column}': expected {expected}, got {got}.");

    public static ArgumentOutOfRangeException Missing(string column, string expected) =>
        new(column, $"Schema mismatch for input column '{column}': expected {expected}, but the input has no such column.");

    /// <summary>The feature column's size; it must be a known-size vector of Single (of <paramref name="expectedSize"/> when given).</summary>
    public static int CheckFeatures(DataViewSchema schema, string column, int? expectedSize = null)
    {
        var expected = expectedSize is { } n ? $"Vector<Single, {n}>" : "Vector<Single> of known size";
        var col = schema.GetColumnOrNull(column) ?? throw Missing(column, expected);
        if (col.Type is not VectorDataViewType { ItemType: var item, Size: var size } || item != NumberDataViewType.Single || size == 0
            || (expectedSize is { } e && size != e))
            throw Mismatch(column, expected, col.Type.ToString()!);
        return size;
    }

    /// <summary>The class count of a multiclass label column: a key of known count, at least 2.</summary>
    public static int CheckKeyLabel(DataViewSchema schema, string column)
    {
        const string expected = "Key<UInt32> of known count (e.g. from MapValueToKey)";
        var col = schema.GetColumnOrNull(column) ?? throw Missing(column, expected);
        if (col.Type is not KeyDataViewType key || key.RawType != typeof(uint) || key.Count == 0)
            throw Mismatch(column, expected, col.Type.ToString()!);
        if (key.Count < 2 || key.Count > int.MaxValue)
            throw Mismatch(column, "a key of 2 or more classes", col.Type.ToString()!);
        return (int)key.Count;
    }

    /// <summary>The label a task trains on: a key (multiclass; returns its class count), Single (regression) or Boolean (binary; both return 0).</summary>
    public static int CheckLabel(DataViewSchema schema, string column, HeadKind task)
    {
        if (task == HeadKind.Multiclass) return CheckKeyLabel(schema, column);
        var expected = LabelType(task);
        var col = schema.GetColumnOrNull(column) ?? throw Missing(column, $"{expected} (the {TaskName(task)} label)");
        if (col.Type != expected)
            throw Mismatch(column, $"{expected} (the {TaskName(task)} label)", col.Type.ToString()!);
        return 0;
    }

    private static DataViewType LabelType(HeadKind task) => task == HeadKind.Binary ? BooleanDataViewType.Instance : NumberDataViewType.Single;

    private static string TaskName(HeadKind task) => task switch
    {
        HeadKind.Binary => "binary classification",
        HeadKind.Multiclass => "multiclass classification",
        _ => "regression",
    };

    /// <summary>Checks a schema shape as the estimators' GetOutputSchema sees it (no vector sizes there).</summary>
    public static void CheckShape(SchemaShape shape, string featureColumn, string labelColumn, HeadKind task)
    {
        CheckVectorShape(shape, featureColumn);
        var expected = task == HeadKind.Multiclass ? "Key<UInt32>" : LabelType(task).ToString()!;
        if (!TryFind(shape, labelColumn, out var label))
            throw Missing(labelColumn, expected);
        if (label.Kind != SchemaShape.Column.VectorKind.Scalar
            || (task == HeadKind.Multiclass ? !label.IsKey : label.IsKey || label.ItemType != LabelType(task)))
            throw Mismatch(labelColumn, expected, Describe(label));
    }

    /// <summary>Checks that <paramref name="column"/> of a schema shape is a known-size vector of Single.</summary>
    public static void CheckVectorShape(SchemaShape shape, string column)
    {
        if (!TryFind(shape, column, out var features))
            throw Missing(column, "Vector<Single> of known size");
        if (features.Kind != SchemaShape.Column.VectorKind.Vector || features.ItemType != NumberDataViewType.Single)
            throw Mismatch(column, "Vector<Single> of known size", Describe(features));
    }

    private static bool TryFind(SchemaShape shape, string name, out SchemaShape.Column column)
    {
        foreach (var c in shape)
            if (c.Name == name) { column = c; return true; }
        column = default;
        return false;
    }

    private static string Describe(SchemaShape.Column column) => column.Kind switch
    {
        SchemaShape.Column.VectorKind.Scalar => column.ItemType.ToString()!,
        SchemaShape.Column.VectorKind.Vector => $"Vector<{column.ItemType}>",
        _ => $"VarVector<{column.ItemType}>",
    };
}
