using System.Reflection;
using Microsoft.ML.Data;

namespace Lightning.Serving;

/// <summary>
/// Checks examples against the fixed vector sizes of <typeparamref name="TData"/>'s columns (<c>[VectorType(n)]</c>)
/// before ML.NET sees them: ML.NET's own check throws an <see cref="InvalidOperationException"/> that names neither the
/// column nor the sizes, which would surface as a 500.
/// </summary>
internal sealed class VectorSizeCheck<TData>
    where TData : class
{
    private readonly FixedVector[] _vectors;

    private VectorSizeCheck(FixedVector[] vectors) => _vectors = vectors;

    public static VectorSizeCheck<TData> Create()
    {
        var vectors = new List<FixedVector>();
        // The same column mapping the prediction engine uses: [ColumnName], [NoColumn], public fields and properties.
        foreach (var column in SchemaDefinition.Create(typeof(TData), SchemaDefinition.Direction.Read))
        {
            if (column.ColumnType is not VectorDataViewType { IsKnownSize: true } vector) continue;
            var member = typeof(TData).GetMember(column.MemberName, BindingFlags.Public | BindingFlags.Instance).FirstOrDefault();
            Func<TData, object?>? get = member switch
            {
                FieldInfo field => field.GetValue,
                PropertyInfo property => property.GetValue,
                _ => null,
            };
            if (get is not null)
                vectors.Add(new FixedVector(column.ColumnName, column.MemberName, vector.Size, vector.ItemType.RawType.Name, get));
        }
        return new VectorSizeCheck<TData>([.. vectors]);
    }

    /// <summary>Null when the example fits; otherwise what is wrong, naming the column, the expected and the received length.</summary>
    /// <param name="example">The example to check.</param>
    /// <param name="index">Its index in a JSON array, or null for a single example.</param>
    public string? Check(TData example, int? index)
    {
        foreach (var vector in _vectors)
        {
            var value = vector.Get(example);
            // VBuffer and other non-array members are ML.NET's to check.
            if (value is not null and not Array) continue;
            var length = (value as Array)?.Length;
            if (length == vector.Size) continue;
            var where = index is { } i ? $"example [{i}]" : "the example";
            return $"In {where}, column '{vector.Column}' ({typeof(TData).Name}.{vector.Member}, [VectorType({vector.Size})]) expects {vector.Size} {vector.ItemType} values, " +
                $"but received {(length is { } n ? n.ToString(System.Globalization.CultureInfo.InvariantCulture) : "null")}.";
        }
        return null;
    }

    private sealed record FixedVector(string Column, string Member, int Size, string ItemType, Func<TData, object?> Get);
}
