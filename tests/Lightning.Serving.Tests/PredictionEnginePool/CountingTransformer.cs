using Microsoft.ML;
using Microsoft.ML.Data;

namespace Lightning.Serving.Tests;

/// <summary>Wraps a model and counts how often it is disposed.</summary>
public sealed class CountingTransformer(ITransformer inner) : ITransformer, IDisposable
{
    public int DisposeCount;

    public bool IsRowToRowMapper => inner.IsRowToRowMapper;

    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => inner.GetOutputSchema(inputSchema);

    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => inner.GetRowToRowMapper(inputSchema);

    public IDataView Transform(IDataView input) => inner.Transform(input);

    public void Save(ModelSaveContext ctx) => inner.Save(ctx);

    public void Dispose() => Interlocked.Increment(ref DisposeCount);
}
