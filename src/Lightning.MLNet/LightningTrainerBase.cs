using Microsoft.ML;
using static TorchSharp.torch;

namespace Lightning.MLNet;

/// <summary>
/// What the Lightning trainers share: a module factory, the options, and the catalog's <see cref="MLContext"/>; each
/// <see cref="Fit"/> makes a fresh module, trains it with the Core <see cref="Trainer"/> and returns its ONNX export.
/// </summary>
public abstract class LightningTrainerBase : IEstimator<LightningTransformer>
{
    private readonly Func<LightningModule<IList<Tensor>>> _moduleFactory;
    private readonly MLContextLink _context;
    private readonly HeadKind _task;

    private protected LightningTrainerBase(Func<LightningModule<IList<Tensor>>> moduleFactory, LightningTrainerOptions options,
        MLContextLink context, HeadKind task)
    {
        ArgumentNullException.ThrowIfNull(moduleFactory);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _moduleFactory = moduleFactory;
        _context = context;
        _task = task;
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
    public LightningTransformer Fit(IDataView input) => LightningFit.Fit(_moduleFactory, Options, input, _task, _context);

    /// <summary>The columns <see cref="Fit"/>'s model adds to <paramref name="inputSchema"/>.</summary>
    /// <param name="inputSchema">The input's schema shape.</param>
    /// <exception cref="ArgumentOutOfRangeException">A column is missing or has the wrong type; the message names it.</exception>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema) => LightningFit.OutputShape(inputSchema, Options, _task);
}
