using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;

namespace Lightning.MLNet;

/// <summary>Column checks with ML.NET's wording: "Schema mismatch for input column 'X': expected …, got …".</summary>
internal static class SchemaChecks
{
    public static ArgumentOutOfRangeException Mismatch(string column, string expected, string got) =>
        new(column, $"Schema mismatch for input column '{column}': expected {expected}, got {got}.");

    public static ArgumentOutOfRangeException Missing(string column, string expected) =>
        new(column, $"Schema mismatch for input column '{column}': expected {expected}, but the input has no such column.");

    /// <summary>The input columns, in order: each a known-size vector of Single or Int64.</summary>
    public static IReadOnlyList<InputColumn> CheckInputs(DataViewSchema schema, IReadOnlyList<string> columns, int? maxLength = null) =>
        [.. columns.Select(column => CheckInput(schema, column, maxLength))];

    /// <summary>Checks that <paramref name="schema"/> holds <paramref name="inputs"/> with the same types (as at training).</summary>
    public static void CheckInputs(DataViewSchema schema, IReadOnlyList<InputColumn> inputs)
    {
        foreach (var input in inputs)
        {
            var col = schema.GetColumnOrNull(input.Name) ?? throw Missing(input.Name, input.Type.ToString()!);
            if (!col.Type.Equals(input.Type))
                throw Mismatch(input.Name, input.Type.ToString()!, col.Type.ToString()!);
        }
    }

    private static InputColumn CheckInput(DataViewSchema schema, string column, int? maxLength)
    {
        var col = schema.GetColumnOrNull(column) ?? throw Missing(column, InputColumn.Allowed);
        if (col.Type is ImageDataViewType image)
        {
            if (image.Height <= 0 || image.Width <= 0)
                throw Mismatch(column, "an Image of known size (its rows may differ in size: resize them upstream, e.g. mlContext.Transforms.ResizeImages)",
                    col.Type.ToString()!);
            return InputColumn.Image(column, image.Height, image.Width);
        }
        if (col.Type is VectorDataViewType { ItemType: KeyDataViewType { Count: > 0 and <= int.MaxValue } key, Size: > 0 and var keys }
            && key.RawType == typeof(uint))
            return new InputColumn(column, keys, TorchSharp.torch.ScalarType.Int64, key.Count);
        if (col.Type is not VectorDataViewType { ItemType: var item, Size: var size }
            || (item != NumberDataViewType.Single && item != NumberDataViewType.Int64))
            throw Mismatch(column, InputColumn.Allowed, col.Type.ToString()!);
        var type = item == NumberDataViewType.Int64 ? TorchSharp.torch.ScalarType.Int64 : TorchSharp.torch.ScalarType.Float32;
        return size == 0 ? new InputColumn(column, 0, type, Variable: true, MaxLength: maxLength) : new InputColumn(column, size, type);
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
    public static void CheckShape(SchemaShape shape, IReadOnlyList<string> inputColumns, string labelColumn, HeadKind task)
    {
        foreach (var column in inputColumns) CheckVectorShape(shape, column);
        var expected = task == HeadKind.Multiclass ? "Key<UInt32>" : LabelType(task).ToString()!;
        if (!TryFind(shape, labelColumn, out var label))
            throw Missing(labelColumn, expected);
        if (label.Kind != SchemaShape.Column.VectorKind.Scalar
            || (task == HeadKind.Multiclass ? !label.IsKey : label.IsKey || label.ItemType != LabelType(task)))
            throw Mismatch(labelColumn, expected, Describe(label));
    }

    /// <summary>Checks that <paramref name="column"/> of a schema shape is a known-size vector of Single or Int64.</summary>
    public static void CheckVectorShape(SchemaShape shape, string column)
    {
        if (!TryFind(shape, column, out var input))
            throw Missing(column, InputColumn.Allowed);
        if (input.Kind == SchemaShape.Column.VectorKind.Scalar && input.ItemType is ImageDataViewType)
            return;
        if (input.Kind == SchemaShape.Column.VectorKind.Scalar || (input.IsKey && input.Kind != SchemaShape.Column.VectorKind.Vector)
            || (input.IsKey ? input.ItemType.RawType != typeof(uint) : input.ItemType != NumberDataViewType.Single && input.ItemType != NumberDataViewType.Int64))
            throw Mismatch(column, InputColumn.Allowed, Describe(input));
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
        SchemaShape.Column.VectorKind.Scalar => ItemName(column),
        SchemaShape.Column.VectorKind.Vector => $"Vector<{ItemName(column)}>",
        _ => $"VarVector<{ItemName(column)}>",
    };

    private static string ItemName(SchemaShape.Column column) => column.IsKey ? $"Key<{column.ItemType}>" : column.ItemType.ToString()!;
}
