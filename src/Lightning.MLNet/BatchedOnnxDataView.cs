using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Lightning.MLNet;

/// <summary>
/// The input plus the ONNX outputs, as OnnxTransformer adds them (same names and types), but scored in blocks: a cursor
/// reads the input columns up to <c>batchSize</c> rows ahead, scores them in one ONNX Runtime call and serves the
/// outputs row by row. Lazy, as every ML.NET transform.
/// </summary>
/// <remarks>
/// The read-ahead uses a second cursor over the input for the input columns, so the input's other columns come from the
/// first cursor as usual: both are unshuffled cursors of the same view, which return rows in the same order (the
/// <see cref="IDataView"/> contract). The cost is that the input columns are computed twice when an ONNX output is read.
/// For the same reason the view does not shuffle (<see cref="CanShuffle"/> is false).
/// </remarks>
internal sealed class BatchedOnnxDataView : IDataView
{
    private readonly IDataView _source;
    private readonly BatchScorer _scorer;
    private readonly int _batchSize;

    /// <param name="source">The input.</param>
    /// <param name="scorer">The batched graph.</param>
    /// <param name="batchSize">Rows per ONNX Runtime call.</param>
    /// <param name="rowSchema">What OnnxTransformer makes of <paramref name="source"/>: its columns then the outputs, in the scorer's order.</param>
    public BatchedOnnxDataView(IDataView source, BatchScorer scorer, int batchSize, DataViewSchema rowSchema)
    {
        _source = source;
        _scorer = scorer;
        _batchSize = batchSize;
        var builder = new DataViewSchema.Builder();
        builder.AddColumns(source.Schema);
        foreach (var name in scorer.OutputNames)
            builder.AddColumn(name, rowSchema[name].Type);
        Schema = builder.ToSchema();
    }

    public DataViewSchema Schema { get; }

    public bool CanShuffle => false;

    public long? GetRowCount() => _source.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = columnsNeeded.ToList();
        var sourceCount = _source.Schema.Count;
        var outputs = needed.Where(c => c.Index >= sourceCount).Select(c => c.Index - sourceCount).ToHashSet();
        var sourceColumns = needed.Where(c => c.Index < sourceCount).Select(c => _source.Schema[c.Index]);
        var main = _source.GetRowCursor(sourceColumns);
        var lead = outputs.Count > 0 ? _source.GetRowCursor(_scorer.Inputs.Select(i => _source.Schema[i.ReadName])) : null;
        return new Cursor(this, main, lead, outputs);
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        [GetRowCursor(columnsNeeded, rand)];

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly BatchedOnnxDataView _parent;
        private readonly DataViewRowCursor _main;
        private readonly DataViewRowCursor? _lead;
        private readonly HashSet<int> _activeOutputs;
        private readonly VectorColumnReader[] _inputs;
        private readonly Array[] _outputs;
        private int _rowsInBlock;
        private int _indexInBlock;

        public Cursor(BatchedOnnxDataView parent, DataViewRowCursor main, DataViewRowCursor? lead, HashSet<int> activeOutputs)
        {
            _parent = parent;
            _main = main;
            _lead = lead;
            _activeOutputs = activeOutputs;
            var scorer = parent._scorer;
            int block = parent._batchSize;
            _inputs = lead is null ? [] : [.. scorer.Inputs.Select(i => VectorColumnReader.Create(lead, i, block))];
            _outputs = [.. scorer.OutputTypes.Select((type, i) =>
            {
                int length = lead is null ? 0 : block * scorer.OutputWidths[i];
                return type switch
                {
                    TensorElementType.Int64 => (Array)new long[length],
                    TensorElementType.Bool => new bool[length],
                    _ => new float[length],
                };
            })];
        }

        public override DataViewSchema Schema => _parent.Schema;

        public override long Position => _main.Position;

        public override long Batch => _main.Batch;

        public override ValueGetter<DataViewRowId> GetIdGetter() => _main.GetIdGetter();

        public override bool IsColumnActive(DataViewSchema.Column column) =>
            column.Index < _parent._source.Schema.Count ? _main.IsColumnActive(_parent._source.Schema[column.Index])
                : _activeOutputs.Contains(column.Index - _parent._source.Schema.Count);

        public override bool MoveNext()
        {
            if (!_main.MoveNext()) return false;
            if (_lead is null) return true;
            if (++_indexInBlock < _rowsInBlock) return true;
            ReadBlock();
            if (_rowsInBlock == 0)
                throw new InvalidOperationException(
                    $"The input returned fewer rows when read again for columns {string.Join(", ", _parent._scorer.Inputs.Select(i => $"'{i.Name}'"))}; scoring in blocks needs an input that returns the same rows each time it is read.");
            return true;
        }

        private void ReadBlock()
        {
            int rows = 0;
            while (rows < _parent._batchSize && _lead!.MoveNext())
            {
                foreach (var input in _inputs) input.Read(rows, _lead.Position);
                rows++;
            }
            if (rows > 0) _parent._scorer.Run(_inputs, rows, _outputs);
            _rowsInBlock = rows;
            _indexInBlock = 0;
        }

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            var sourceCount = _parent._source.Schema.Count;
            if (column.Index < sourceCount) return _main.GetGetter<TValue>(_parent._source.Schema[column.Index]);
            int output = column.Index - sourceCount;
            if (!_activeOutputs.Contains(output))
                throw new InvalidOperationException($"Column '{column.Name}' was not requested when the cursor was made.");
            int width = _parent._scorer.OutputWidths[output];
            Delegate getter = _outputs[output] switch
            {
                float[] values => Getter(values, width),
                long[] values => Getter(values, width),
                bool[] values => Getter(values, width),
                _ => throw new InvalidOperationException($"Column '{column.Name}' has an unsupported type."),
            };
            return getter as ValueGetter<TValue> ?? throw new InvalidOperationException(
                $"Column '{column.Name}' is {column.Type}; it cannot be read as {typeof(TValue).Name}.");
        }

        private ValueGetter<VBuffer<T>> Getter<T>(T[] block, int width) => (ref VBuffer<T> value) =>
        {
            var editor = VBufferEditor.Create(ref value, width);
            block.AsSpan(_indexInBlock * width, width).CopyTo(editor.Values);
            value = editor.Commit();
        };

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _main.Dispose();
                _lead?.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}
