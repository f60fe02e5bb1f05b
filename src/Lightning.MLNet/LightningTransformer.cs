using Microsoft.ML;
using Microsoft.ML.Data;

namespace Lightning.MLNet;

/// <summary>
/// A model trained by a Lightning trainer (<see cref="LightningCatalog"/>): the trained module exported to ONNX and
/// scored by ML.NET's OnnxTransformer. It adds <c>Score</c> (multiclass: the class probabilities,
/// <c>Vector&lt;Single, K&gt;</c>; regression: <c>Vector&lt;Single, 1&gt;</c>) and, for multiclass, <c>PredictedLabel</c>
/// (<c>Vector&lt;Key&lt;UInt32, 0-(K-1)&gt;, 1&gt;</c>, whose key values are the label's own, in the label's
/// order, when the label key carries them (as after <c>MapValueToKey</c>; so <c>MapKeyToValue</c> gives the labels back),
/// else the class numbers 1..K). They are one-slot
/// vectors rather than the scalars of ML.NET's own trainers because OnnxTransformer fails at run time on rank-0 outputs,
/// so <c>mlContext.Regression.Evaluate</c> does not take the regression <c>Score</c> yet. <c>mlContext.Model.Save</c> writes it as
/// ML.NET's own transformer chain with the ONNX bytes embedded, so <c>mlContext.Model.Load</c> reads it back in a
/// process that references only Microsoft.ML and Microsoft.ML.OnnxTransformer (the loaded model is a
/// <see cref="TransformerChain{TLastTransformer}"/>).
/// </summary>
/// <remarks>Dispose it to release the ONNX Runtime session.</remarks>
public sealed class LightningTransformer : ITransformer, IDisposable
{
    private readonly ITransformer _inner;
    private readonly byte[] _onnxModel;
    private readonly string _tempDirectory;

    internal LightningTransformer(ITransformer inner, byte[] onnxModel, LightningModule module, string? checkpointPath,
        string featureColumnName, int featureCount, int classCount, string tempDirectory)
    {
        _tempDirectory = tempDirectory;
        _inner = inner;
        _onnxModel = onnxModel;
        Module = module;
        CheckpointPath = checkpointPath;
        FeatureColumnName = featureColumnName;
        FeatureCount = featureCount;
        ClassCount = classCount;
    }

    /// <summary>The trained module (the state at the end of <c>Fit</c>), for use outside ML.NET.</summary>
    public LightningModule Module { get; }

    /// <summary>The best checkpoint the trainer wrote, or null when checkpointing was off.</summary>
    public string? CheckpointPath { get; }

    /// <summary>
    /// The exported ONNX model that the transformer scores with. OnnxTransformer runs one row per call, so the graph
    /// takes one feature vector <c>[F]</c> and returns that row's <c>Score</c> (and <c>PredictedLabel</c>).
    /// </summary>
    public ReadOnlyMemory<byte> OnnxModel => _onnxModel;

    /// <summary>The feature column the model reads.</summary>
    public string FeatureColumnName { get; }

    /// <summary>The size of the feature vector the model was trained on.</summary>
    public int FeatureCount { get; }

    /// <summary>The number of classes (multiclass), or 0 (regression).</summary>
    public int ClassCount { get; }

    /// <summary>Whether the model maps row to row; always true.</summary>
    public bool IsRowToRowMapper => _inner.IsRowToRowMapper;

    /// <summary>The schema <see cref="Transform"/> produces from <paramref name="inputSchema"/>.</summary>
    /// <param name="inputSchema">The input's schema; it must hold the feature column as a vector of the trained size.</param>
    /// <exception cref="ArgumentOutOfRangeException">The feature column is missing or has another type.</exception>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        SchemaChecks.CheckFeatures(inputSchema, FeatureColumnName, FeatureCount);
        return _inner.GetOutputSchema(inputSchema);
    }

    /// <summary>A row-to-row mapper over <paramref name="inputSchema"/>, as for every ML.NET transformer.</summary>
    /// <param name="inputSchema">The input's schema.</param>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        SchemaChecks.CheckFeatures(inputSchema, FeatureColumnName, FeatureCount);
        return _inner.GetRowToRowMapper(inputSchema);
    }

    /// <summary>Adds the prediction columns to <paramref name="input"/> (lazily, as ML.NET does).</summary>
    /// <param name="input">The rows to score.</param>
    public IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        SchemaChecks.CheckFeatures(input.Schema, FeatureColumnName, FeatureCount);
        return _inner.Transform(input);
    }

    /// <summary>Writes the underlying ML.NET chain; called by <c>mlContext.Model.Save</c>.</summary>
    /// <param name="ctx">ML.NET's save context.</param>
    void ICanSaveModel.Save(ModelSaveContext ctx) => _inner.Save(ctx);

    /// <summary>Releases the ONNX Runtime session, the module and the ONNX file OnnxTransformer scores from.</summary>
    public void Dispose()
    {
        (_inner as IDisposable)?.Dispose();
        Module.Dispose();
        try
        {
            Directory.Delete(_tempDirectory, recursive: true);
        }
        catch (IOException)
        {
            // Still open elsewhere (e.g. on Windows); the folder is in the temp directory.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
