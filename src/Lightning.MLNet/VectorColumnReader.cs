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

    /// <summary>The first <paramref name="rows"/> rows as a tensor [rows, Width] (variable length: padded to the longest, or to MaxLength).</summary>
    public abstract Tensor ToTensor(int rows);

    /// <summary>Each of the first <paramref name="rows"/> rows' length, int64 [rows], for a variable-length column; else null.</summary>
    public virtual Tensor? Lengths(int rows) => null;

    /// <summary>
    /// The first <paramref name="rows"/> rows as the batched graph's inputs for the column: [rows, Width] over this
    /// reader's array; for a variable-length column the values and mask padded to the longest of them (or MaxLength).
    /// </summary>
    public abstract IEnumerable<OrtValue> ToOrtValues(int rows);

    /// <summary>A reader of <paramref name="column"/> with room for <paramref name="rows"/> rows.</summary>
    public static VectorColumnReader Create(DataViewRowCursor cursor, InputColumn column, int rows) =>
        column.Variable ? column.ElementType == ScalarType.Int64 ? new Ragged<long>(cursor, column, rows, (values, shape) => tensor(values, shape))
            : new Ragged<float>(cursor, column, rows, (values, shape) => tensor(values, shape))
        : column.IsKey ? new KeyIds(cursor, column, rows)
        : column.ElementType == ScalarType.Int64 ? new Typed<long>(cursor, column, rows, (values, shape) => tensor(values, shape))
        : new Typed<float>(cursor, column, rows, (values, shape) => tensor(values, shape));

    private class Typed<T>(DataViewRowCursor cursor, InputColumn column, int rows, Func<T[], long[], Tensor> toTensor)
        : VectorColumnReader(column) where T : unmanaged
    {
        private T[] _values = new T[checked(rows * column.Width)];

        protected Span<T> Row(int row) => _values.AsSpan(row * Column.Width, Column.Width);

        public override void Read(int row, long position)
        {
            var getter = _getter ??= cursor.GetGetter<VBuffer<T>>(cursor.Schema[Column.ReadName]);
            getter(ref _row);
            CopyRow(_row, Row(row), Column.Name, position);
        }

        private ValueGetter<VBuffer<T>>? _getter;
        private VBuffer<T> _row;

        public override void Resize(int rows) => Array.Resize(ref _values, checked(rows * Column.Width));

        public override Tensor ToTensor(int rows) => toTensor(_values.AsSpan(0, rows * Column.Width).ToArray(), [rows, .. Column.RowShape]);

        public override IEnumerable<OrtValue> ToOrtValues(int rows) =>
            [OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, _values.AsMemory(0, rows * Column.Width), [rows, .. Column.RowShape])];
    }

    /// <summary>A variable-length column's rows, each kept at its own length and padded with zeros when they leave.</summary>
    private sealed class Ragged<T>(DataViewRowCursor cursor, InputColumn column, int rows, Func<T[], long[], Tensor> toTensor)
        : VectorColumnReader(column) where T : unmanaged
    {
        private readonly ValueGetter<VBuffer<T>> _getter = cursor.GetGetter<VBuffer<T>>(cursor.Schema[column.Name]);
        private T[][] _rows = new T[rows][];
        private VBuffer<T> _row;

        public override void Read(int row, long position)
        {
            _getter(ref _row);
            if (_row.Length == 0)
                throw new InvalidOperationException($"Column '{Column.Name}' ({Column.Type}): row {position} is empty; a variable-length input needs at least one value per row.");
            if (_row.Length > Column.MaxLength)
                throw new InvalidOperationException(
                    $"Column '{Column.Name}' ({Column.Type}): row {position} has {_row.Length} values, more than MaxLength = {Column.MaxLength}. Raise MaxLength, or cut the rows upstream.");
            var values = _rows[row] is { } existing && existing.Length == _row.Length ? existing : new T[_row.Length];
            CopyRow(_row, values, Column.Name, position);
            _rows[row] = values;
        }

        public override void Resize(int rows) => Array.Resize(ref _rows, rows);

        private int PaddedLength(int rows) => Column.MaxLength ?? _rows.Take(rows).Max(r => r.Length);

        private T[] Padded(int rows, int length)
        {
            var padded = new T[checked(rows * length)];
            for (int i = 0; i < rows; i++) _rows[i].CopyTo(padded, i * length);
            return padded;
        }

        public override Tensor ToTensor(int rows)
        {
            int length = rows == 0 ? 0 : PaddedLength(rows);
            return toTensor(Padded(rows, length), [rows, length]);
        }

        public override Tensor? Lengths(int rows) => tensor(_rows.Take(rows).Select(r => (long)r.Length).ToArray(), [rows]);

        public override IEnumerable<OrtValue> ToOrtValues(int rows)
        {
            int length = PaddedLength(rows);
            var mask = new long[rows * length];
            for (int i = 0; i < rows; i++) mask.AsSpan(i * length, _rows[i].Length).Fill(1);
            return [OrtValue.CreateTensorValueFromMemory(Padded(rows, length), [rows, length]),
                OrtValue.CreateTensorValueFromMemory(mask, [rows, length])];
        }
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
