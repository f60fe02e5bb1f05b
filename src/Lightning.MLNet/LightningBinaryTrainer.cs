using Microsoft.ML;
using static TorchSharp.torch;

namespace Lightning.MLNet;

/// <summary>
/// Trains a <see cref="LightningModule{TBatch}"/> as an ML.NET binary classifier: the module maps features [batch, F] to one
/// logit per row ([batch] or [batch, 1]); its training batches are [features float32 [b, F], labels float32 [b] (1 for
/// true, 0 for false)], e.g. for <c>binary_cross_entropy_with_logits</c>. The model's <c>Score</c> holds the logit,
/// <c>Probability</c> its sigmoid (calibrated as a logistic model's is, when the module trains on the log loss) and
/// <c>PredictedLabel</c> whether the logit is above 0, as <c>mlContext.BinaryClassification.Evaluate</c> takes them.
/// Made by <see cref="LightningCatalog"/>; <see cref="Fit"/> trains with the Core <see cref="Trainer"/>.
/// </summary>
/// <remarks>
/// <list type="table">
/// <item><term>Does this estimator need to look at the data to train its parameters?</term><description>Yes</description></item>
/// <item><term>Input columns</term><description>The feature column (known-size vector of Single) and the label column (Boolean).</description></item>
/// <item><term>Output columns</term><description><c>Score</c> (Single), <c>Probability</c> (Single) and <c>PredictedLabel</c> (Boolean).</description></item>
/// <item><term>Exportable to ONNX</term><description>The model is ONNX (scored by ML.NET's OnnxTransformer).</description></item>
/// </list>
/// </remarks>
public sealed class LightningBinaryTrainer : IEstimator<LightningTransformer>
{
    private readonly Func<LightningModule<IList<Tensor>>> _moduleFactory;
    private readonly MLContextLink _context;

    internal LightningBinaryTrainer(Func<LightningModule<IList<Tensor>>> moduleFactory, LightningTrainerOptions options, MLContextLink context)
    {
        ArgumentNullException.ThrowIfNull(moduleFactory);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _moduleFactory = moduleFactory;
        _context = context;
        Options = options;
    }

    /// <summary>The options this trainer was made with.</summary>
    public LightningTrainerOptions Options { get; }

    /// <summary>
    /// Reads the feature and label columns, makes a fresh module (seeded with <see cref="LightningTrainerOptions.Seed"/>),
    /// trains it on batches shuffled each epoch, exports it to ONNX and returns the model. Each call trains a new module.
    /// </summary>
    /// <param name="input">The training rows.</param>
    /// <exception cref="ArgumentOutOfRangeException">A column is missing or has the wrong type; the message names it.</exception>
    public LightningTransformer Fit(IDataView input) => LightningFit.Fit(_moduleFactory, Options, input, HeadKind.Binary, _context);

    /// <summary>The columns <see cref="Fit"/>'s model adds to <paramref name="inputSchema"/>.</summary>
    /// <param name="inputSchema">The input's schema shape.</param>
    /// <exception cref="ArgumentOutOfRangeException">A column is missing or has the wrong type; the message names it.</exception>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema) => LightningFit.OutputShape(inputSchema, Options, HeadKind.Binary);
}
