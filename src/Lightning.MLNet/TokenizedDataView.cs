using Microsoft.ML;
using Microsoft.ML.Data;

namespace Lightning.MLNet;

/// <summary>The input plus the ids (and mask) of <see cref="TokenizeTextTransformer"/>, computed per row when read.</summary>
internal sealed class TokenizedDataView(IDataView source, DataViewSchema schema, TokenizeTextTransformer tokenizer) : IDataView
{
    private readonly IDataView _source = source;
    private readonly TokenizeTextTransformer _tokenizer = tokenizer;

    public DataViewSchema Schema { get; } = schema;

    public bool CanShuffle => _source.CanShuffle;

    public long? GetRowCount() => _source.GetRowCount();

    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        var needed = columnsNeeded.ToList();
        int sourceCount = _source.Schema.Count;
        bool outputs = needed.Any(c => c.Index >= sourceCount);
        var sourceColumns = needed.Where(c => c.Index < sourceCount).Select(c => _source.Schema[c.Index]).ToList();
        if (outputs) sourceColumns.Add(_source.Schema[_tokenizer.InputColumnName]);
        return new Cursor(this, _source.GetRowCursor(sourceColumns.Distinct(), rand), outputs);
    }

    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        [GetRowCursor(columnsNeeded, rand)];

    private sealed class Cursor : DataViewRowCursor
    {
        private readonly TokenizedDataView _parent;
        private readonly DataViewRowCursor _source;
        private readonly ValueGetter<ReadOnlyMemory<char>>? _text;
        private ReadOnlyMemory<char> _value;
        private VBuffer<long> _ids;
        private VBuffer<long> _mask;
        private long _encoded = -1;

        public Cursor(TokenizedDataView parent, DataViewRowCursor source, bool outputs)
        {
            _parent = parent;
            _source = source;
            _text = outputs ? source.GetGetter<ReadOnlyMemory<char>>(source.Schema[parent._tokenizer.InputColumnName]) : null;
        }

        public override DataViewSchema Schema => _parent.Schema;

        public override long Position => _source.Position;

        public override long Batch => _source.Batch;

        public override ValueGetter<DataViewRowId> GetIdGetter() => _source.GetIdGetter();

        public override bool IsColumnActive(DataViewSchema.Column column) =>
            column.Index < _parent._source.Schema.Count ? _source.IsColumnActive(_parent._source.Schema[column.Index]) : _text is not null;

        public override bool MoveNext() => _source.MoveNext();

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            int sourceCount = _parent._source.Schema.Count;
            if (column.Index < sourceCount) return _source.GetGetter<TValue>(_parent._source.Schema[column.Index]);
            bool mask = column.Index == sourceCount + 1;
            ValueGetter<VBuffer<long>> getter = (ref VBuffer<long> value) =>
            {
                Encode();
                (mask ? _mask : _ids).CopyTo(ref value);
            };
            return getter as ValueGetter<TValue> ?? throw new InvalidOperationException(
                $"Column '{column.Name}' is {column.Type}; it cannot be read as {typeof(TValue).Name}.");
        }

        private void Encode()
        {
            if (_encoded == _source.Position) return;
            _text!(ref _value);
            _parent._tokenizer.Encode(_value, ref _ids, ref _mask, _parent._tokenizer.MaskColumnName is not null);
            _encoded = _source.Position;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing) _source.Dispose();
            base.Dispose(disposing);
        }
    }
}
