using Microsoft.ML;
using static TorchSharp.torch;

namespace Lightning.MLNet;

/// <summary>
/// Maps a vector column through a trained module (e.g. an autoencoder's encoder to its embedding): the module is
/// exported to ONNX and scored by ML.NET's OnnxTransformer, so the model saves and loads as ML.NET's own.
/// Made by <c>mlContext.Transforms.Lightning(...)</c> (<see cref="LightningCatalog"/>).
/// </summary>
/// <remarks>
/// <list type="table">
/// <item><term>Does this estimator need to look at the data to train its parameters?</term><description>No (Fit reads the input's schema for the vector size).</description></item>
/// <item><term>Input column</term><description>Known-size vector of Single or Int64; the module gets it as float32 or int64 [batch, F].</description></item>
/// <item><term>Output column</term><description>Known-size vector of Single: each row's module output (float32 [batch, …]), flattened.</description></item>
/// <item><term>Exportable to ONNX</term><description>The model is ONNX (scored by ML.NET's OnnxTransformer).</description></item>
/// </list>
/// The module is exported in eval mode when <see cref="Fit"/> runs; later changes to its weights do not reach the model.
/// It must be a TorchSharp layer the ONNX exporter knows, or implement <see cref="Lightning.Onnx.IOnnxExportable"/>.
/// </remarks>
public sealed class LightningTransformEstimator : IEstimator<LightningTransformer>
{
    private readonly nn.Module _module;
    private readonly MLContextLink _context;

    internal LightningTransformEstimator(nn.Module module, LightningTransformOptions options, MLContextLink context)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _module = module;
        _context = context;
        Options = options;
    }

    /// <summary>The options this transform was made with.</summary>
    public LightningTransformOptions Options { get; }

    /// <summary>Exports the module for the input column's vector size and returns the transformer.</summary>
    /// <param name="input">Data whose schema holds the input column (no rows are read).</param>
    /// <exception cref="ArgumentOutOfRangeException">The input column is missing or not a known-size vector of Single or Int64; the message names it.</exception>
    /// <exception cref="NotSupportedException">The module cannot be exported to ONNX; the message names the layer.</exception>
    public LightningTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        var inputs = SchemaChecks.CheckInputs(input.Schema, [Options.InputColumnName]);
        return LightningFit.Wrap(_module, ownsModule: false, HeadKind.Vector, classCount: 0, input, inputs,
            [Options.OutputColumnName], Options.TransformBatchSize, seed: 0, checkpointPath: null, _context, rest: null);
    }

    /// <summary>The input columns plus the output column (a vector of Single).</summary>
    /// <param name="inputSchema">The input's schema shape.</param>
    /// <exception cref="ArgumentOutOfRangeException">The input column is missing or not a vector of Single or Int64; the message names it.</exception>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        SchemaChecks.CheckVectorShape(inputSchema, Options.InputColumnName);
        // SchemaShape columns cannot be made outside ML.NET: a copy of the input column describes the output (a vector of Single).
        return new MLContext().Transforms.CopyColumns(Options.OutputColumnName, Options.InputColumnName).GetOutputSchema(inputSchema);
    }
}
