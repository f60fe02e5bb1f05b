using Microsoft.ML;
using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Lightning.MLNet;

/// <summary>
/// A module exported to ONNX as an ML.NET transformer: the model a Lightning trainer returns (<see cref="LightningCatalog"/>)
/// or a Lightning transform (<see cref="LightningTransformEstimator"/>).
/// <list type="bullet">
/// <item>Trainers add the columns ML.NET's own trainers add, of the same types, so the catalogs' <c>Evaluate</c>,
/// <c>CrossValidate</c> and <c>PermutationFeatureImportance</c> take them as they are: regression <c>Score</c> (Single);
/// binary <c>Score</c> (the logit, Single), <c>Probability</c> (its sigmoid, Single) and <c>PredictedLabel</c> (Boolean);
/// multiclass <c>Score</c> (the class probabilities, <c>Vector&lt;Single, K&gt;</c>) and <c>PredictedLabel</c>
/// (<c>Key&lt;UInt32, 0-(K-1)&gt;</c>, whose key values are the label's own, in the label's order, when the label key
/// carries them (as after <c>MapValueToKey</c>; so <c>MapKeyToValue</c> gives the labels back), else the class numbers 1..K).</item>
/// <item>A transform adds its output column, <c>Vector&lt;Single, D&gt;</c>: each row's module output, flattened.</item>
/// </list>
/// </summary>
/// <remarks>
/// <para><see cref="Transform"/> scores the rows in blocks of <see cref="TransformBatchSize"/>, one ONNX Runtime call per
/// block; a <see cref="PredictionEngine{TSrc, TDst}"/> (through <see cref="GetRowToRowMapper"/>) scores one row per call.</para>
/// <para><c>mlContext.Model.Save</c> writes ML.NET's transformer chain: for image input columns ML.NET's ExtractPixels (<c>Image.Pixels</c>) and for key input columns ML.NET's MapKeyToVector to their indicators (<c>Tokens.Indicators</c>), OnnxTransformer with the ONNX bytes embedded, then
/// for a trainer a <c>CustomMapping</c> of this assembly that makes OnnxTransformer's one-slot vectors scalars
/// (OnnxTransformer cannot make scalar columns) and ML.NET's key mapping. <c>mlContext.Model.Load</c> reads it back in a
/// context that knows this assembly: call <c>mlContext.ComponentCatalog.RegisterAssembly(typeof(LightningCatalog).Assembly)</c>
/// first. <see cref="PortableModel"/> is the same model without the CustomMapping (one-slot vector outputs); saved, it loads
/// in a process that references only Microsoft.ML and Microsoft.ML.OnnxTransformer.</para>
/// <para>Dispose it to release the ONNX Runtime sessions.</para>
/// </remarks>
public sealed class LightningTransformer : ISingleFeaturePredictionTransformer<nn.Module>, IDisposable
{
    private readonly ITransformer? _keys;
    private readonly ITransformer _onnx;
    private readonly ITransformer? _rest;
    private readonly TransformerChain<ITransformer> _chain;
    private readonly TransformerChain<ITransformer> _portable;
    private readonly byte[] _onnxModel;
    private readonly BatchScorer _scorer;
    private readonly bool _ownsModule;
    private readonly string _tempDirectory;
    private readonly IReadOnlyList<InputColumn> _inputs;

    internal LightningTransformer(ITransformer? keys, ITransformer onnx, ITransformer? rest, ITransformer? portableRest, byte[] onnxModel, byte[] batchedOnnxModel,
        nn.Module module, bool ownsModule, string? checkpointPath, IReadOnlyList<InputColumn> inputs, int classCount,
        int transformBatchSize, string tempDirectory)
    {
        _keys = keys;
        _onnx = onnx;
        _rest = rest;
        _chain = Flat(keys, onnx, rest);
        _portable = Flat(keys, onnx, portableRest);
        _onnxModel = onnxModel;
        _scorer = new BatchScorer(batchedOnnxModel, inputs);
        _ownsModule = ownsModule;
        _tempDirectory = tempDirectory;
        Module = module;
        CheckpointPath = checkpointPath;
        _inputs = inputs;
        ClassCount = classCount;
        TransformBatchSize = transformBatchSize;
    }

    // Flat, as an EstimatorChain's Fit makes it: the saved model is ML.NET's chain of transformers.
    private static TransformerChain<ITransformer> Flat(ITransformer? keys, ITransformer onnx, ITransformer? rest) =>
        new([.. keys is null ? [] : Parts(keys), onnx, .. rest is null ? [] : Parts(rest)]);

    private static IEnumerable<ITransformer> Parts(ITransformer transformer) =>
        transformer as IEnumerable<ITransformer> ?? [transformer];

    /// <summary>
    /// The module: for a trainer's model the trained <see cref="LightningModule"/> (its state at the end of <c>Fit</c>, owned
    /// and disposed by this transformer); for a transform the module it was given (still owned by the caller).
    /// </summary>
    public nn.Module Module { get; }

    /// <summary>The best checkpoint the trainer wrote, or null when checkpointing was off (and for a transform).</summary>
    public string? CheckpointPath { get; }

    /// <summary>
    /// The ONNX model that the saved chain scores with. OnnxTransformer runs one row per call, so this graph takes one
    /// row of each input column (<c>[F]</c>, one graph input per column, named after it) and returns that row's outputs.
    /// </summary>
    public ReadOnlyMemory<byte> OnnxModel => _onnxModel;

    /// <summary>The (first) input column the model reads; see <see cref="FeatureColumnNames"/> for all.</summary>
    public string FeatureColumnName => _inputs[0].Name;

    /// <summary>The input columns the model reads, in forward-argument order.</summary>
    public IReadOnlyList<string> FeatureColumnNames => [.. _inputs.Select(i => i.Name)];

    /// <summary>The size of the (first) input vector the model takes.</summary>
    public int FeatureCount => _inputs[0].Width;

    /// <summary>
    /// The (first) input column's type, <c>Vector&lt;Single, FeatureCount&gt;</c> or <c>Vector&lt;Int64, FeatureCount&gt;</c>
    /// (what permutation feature importance permutes).
    /// </summary>
    public DataViewType FeatureColumnType => _inputs[0].Type;

    /// <summary>The module, as ML.NET's prediction transformers expose their model parameters.</summary>
    nn.Module IPredictionTransformer<nn.Module>.Model => Module;

    /// <summary>
    /// The model as ML.NET's own transformers only (OnnxTransformer, then ML.NET's key mapping): a trainer's outputs stay
    /// OnnxTransformer's one-slot vectors (regression <c>Score</c> <c>Vector&lt;Single, 1&gt;</c>, multiclass
    /// <c>PredictedLabel</c> <c>Vector&lt;Key, 1&gt;</c>, binary <c>Score</c>, <c>Probability</c> and <c>PredictedLabel</c> one
    /// slot each). Save it (<c>mlContext.Model.Save(model.PortableModel, …)</c>) for a process that references only
    /// Microsoft.ML and Microsoft.ML.OnnxTransformer. Owned by this transformer.
    /// </summary>
    public ITransformer PortableModel => _portable;

    /// <summary>The number of classes (multiclass), or 0 (regression and transforms).</summary>
    public int ClassCount { get; }

    /// <summary>Rows per ONNX Runtime call in <see cref="Transform"/>.</summary>
    public int TransformBatchSize { get; }

    /// <summary>ONNX Runtime calls <see cref="Transform"/>'s views have made (tests check that rows are scored in blocks).</summary>
    internal long BatchRuns => _scorer.Runs;

    /// <summary>Whether the model maps row to row; always true.</summary>
    public bool IsRowToRowMapper => true;

    /// <summary>The schema <see cref="Transform"/> produces from <paramref name="inputSchema"/>.</summary>
    /// <param name="inputSchema">The input's schema; it must hold the input columns with their trained types.</param>
    /// <exception cref="ArgumentOutOfRangeException">An input column is missing or has another type.</exception>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        SchemaChecks.CheckInputs(inputSchema, _inputs);
        return _chain.GetOutputSchema(inputSchema);
    }

    /// <summary>A row-to-row mapper over <paramref name="inputSchema"/> (one ONNX Runtime call per row), as for every ML.NET transformer.</summary>
    /// <param name="inputSchema">The input's schema.</param>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        SchemaChecks.CheckInputs(inputSchema, _inputs);
        return ((ITransformer)_chain).GetRowToRowMapper(inputSchema);
    }

    /// <summary>
    /// Adds the output columns to <paramref name="input"/>, lazily as ML.NET does; a cursor over the result scores
    /// <see cref="TransformBatchSize"/> rows per ONNX Runtime call. The result does not shuffle; cache it or use
    /// <c>mlContext.Data.ShuffleRows</c> when a shuffled read is needed.
    /// </summary>
    /// <param name="input">The rows to score.</param>
    /// <exception cref="ArgumentOutOfRangeException">An input column is missing or has another type.</exception>
    public IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        SchemaChecks.CheckInputs(input.Schema, _inputs);
        var keyed = _keys?.Transform(input) ?? input;
        var scored = new BatchedOnnxDataView(keyed, _scorer, TransformBatchSize, _onnx.GetOutputSchema(keyed.Schema));
        return _rest?.Transform(scored) ?? scored;
    }

    /// <summary>Writes the underlying ML.NET chain; called by <c>mlContext.Model.Save</c>.</summary>
    /// <param name="ctx">ML.NET's save context.</param>
    void ICanSaveModel.Save(ModelSaveContext ctx) => ((ICanSaveModel)_chain).Save(ctx);

    /// <summary>Releases the ONNX Runtime sessions, the module (when this transformer owns it) and the ONNX file OnnxTransformer scores from.</summary>
    public void Dispose()
    {
        // Disposes OnnxTransformer, which the portable chain shares; its other parts (key mappings) hold nothing to release.
        _chain.Dispose();
        _scorer.Dispose();
        if (_ownsModule) Module.Dispose();
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
