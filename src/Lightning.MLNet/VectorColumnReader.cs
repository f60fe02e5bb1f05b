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

    /// <summary>A reader of <paramref name="column"/> with room for <paramref name="rows"/> rows.</summary>
    public static VectorColumnReader Create(DataViewRowCursor cursor, InputColumn column, int rows) =>
        column.IsKey ? new KeyIds(cursor, column, rows)
        : column.ElementType == ScalarType.Int64 ? new Typed<long>(cursor, column, rows, (values, shape) => tensor(values, shape))
        : new Typed<float>(cursor, column, rows, (values, shape) => tensor(values, shape));

    private class Typed<T>(DataViewRowCursor cursor, InputColumn column, int rows, Func<T[], long[], Tensor> toTensor)
        : VectorColumnReader(column) where T : unmanaged
    {
        private T[] _values = new T[checked(rows * column.Width)];

        protected Span<T> Row(int row) => _values.AsSpan(row * Column.Width, Column.Width);

        public override void Read(int row, long position)
        {
            var getter = _getter ??= cursor.GetGetter<VBuffer<T>>(cursor.Schema[Column.Name]);
            getter(ref _row);
            CopyRow(_row, Row(row), Column.Name, position);
        }

        private ValueGetter<VBuffer<T>>? _getter;
        private VBuffer<T> _row;

        public override void Resize(int rows) => Array.Resize(ref _values, checked(rows * Column.Width));

        public override Tensor ToTensor(int rows) => toTensor(_values.AsSpan(0, rows * Column.Width).ToArray(), [rows, Column.Width]);

        public override OrtValue ToOrtValue(int rows) =>
            OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _values.AsMemory(0, rows * Column.Width), [rows, Column.Width]);
    }

    /// <summary>A key column's values 1..K as the ids 0..K-1; a missing key (0) has no id and fails, naming the row.</summary>
    private sealed class KeyIds(DataViewRowCursor cursor, InputColumn column, int rows)
        : Typed<long>(cursor, column, rows, (values, shape) => tensor(values, shape))
    {
        private readonly ValueGetter<VBuffer<uint>> _keyGetter = cursor.GetGetter<VBuffer<uint>>(cursor.Schema[column.Name]);
        private VBuffer<uint> _keys;

        public override void Read(int row, long position)
        {
            _keyGetter(ref _keys);
            if (_keys.Length != Column.Width)
                throw new InvalidOperationException($"Column '{Column.Name}': row {position} has {_keys.Length} values; expected {Column.Width}.");
            var target = Row(row);
            target.Fill(-1);
            var values = _keys.GetValues();
            var indices = _keys.IsDense ? default : _keys.GetIndices();
            for (int i = 0; i < values.Length; i++) target[_keys.IsDense ? i : indices[i]] = (long)values[i] - 1;
            if (target.IndexOf(-1L) is var slot and >= 0)
                throw new InvalidOperationException(
                    $"Column '{Column.Name}' ({Column.Type}): row {position} has a missing key at slot {slot}; the module gets key k as id k - 1 " +
                    $"(0 to {Column.KeyCount - 1}), and a missing key has none. Filter such rows, or give unknown values a key of their own upstream.");
        }
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
