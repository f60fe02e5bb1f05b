using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using static TorchSharp.torch;

namespace Lightning.MLNet;

/// <summary>
/// Copies one input column's rows from a cursor into a row-major array (typed getter, one reused
/// <see cref="VBuffer{T}"/>, so no value is boxed), to become a tensor (training) or an ONNX Runtime input (scoring).
/// </summary>
internal abstract class VectorColumnReader
{
    protected VectorColumnReader(InputColumn column) => Column = column;

    public InputColumn Column { get; }

    /// <summary>Reads the cursor's current row into row slot <paramref name="row"/>.</summary>
    public abstract void Read(int row, long position);

    /// <summary>Makes room for <paramref name="rows"/> rows, keeping those read.</summary>
    public abstract void Resize(int rows);

    /// <summary>The first <paramref name="rows"/> rows as a tensor [rows, Width].</summary>
    public abstract Tensor ToTensor(int rows);

    /// <summary>The first <paramref name="rows"/> rows as an ONNX Runtime input [rows, Width] over this reader's array.</summary>
    public abstract OrtValue ToOrtValue(int rows);

    public static VectorColumnReader Create(DataViewRowCursor cursor, InputColumn column, int rows) => column.ElementType == ScalarType.Int64
        ? new Typed<long>(cursor, column, rows, (values, shape) => tensor(values, shape))
        : new Typed<float>(cursor, column, rows, (values, shape) => tensor(values, shape));

    private sealed class Typed<T>(DataViewRowCursor cursor, InputColumn column, int rows, Func<T[], long[], Tensor> toTensor)
        : VectorColumnReader(column) where T : unmanaged
    {
        private readonly ValueGetter<VBuffer<T>> _getter = cursor.GetGetter<VBuffer<T>>(cursor.Schema[column.Name]);
        private T[] _values = new T[checked(rows * column.Width)];
        private VBuffer<T> _row;

        public override void Read(int row, long position)
        {
            _getter(ref _row);
            CopyRow(_row, _values.AsSpan(row * Column.Width, Column.Width), Column.Name, position);
        }

        public override void Resize(int rows) => Array.Resize(ref _values, checked(rows * Column.Width));

        public override Tensor ToTensor(int rows) => toTensor(_values.AsSpan(0, rows * Column.Width).ToArray(), [rows, Column.Width]);

        public override OrtValue ToOrtValue(int rows) =>
            OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _values.AsMemory(0, rows * Column.Width), [rows, Column.Width]);
    }

    /// <summary>Writes one row's vector, dense or sparse, into <paramref name="target"/>, whose length it must have.</summary>
    internal static void CopyRow<T>(in VBuffer<T> row, Span<T> target, string columnName, long position)
    {
        if (row.Length != target.Length)
            throw new InvalidOperationException($"Column '{columnName}': row {position} has {row.Length} values; expected {target.Length}.");
        if (row.IsDense)
        {
            row.GetValues().CopyTo(target);
            return;
        }
        target.Clear();
        var values = row.GetValues();
        var indices = row.GetIndices();
        for (int i = 0; i < values.Length; i++) target[indices[i]] = values[i];
    }
}
