using Microsoft.ML;

namespace Lightning.MLNet;

/// <summary>Options of the Lightning regression, binary and multiclass trainers (<see cref="LightningCatalog"/>).</summary>
public sealed record LightningTrainerOptions
{
    /// <summary>The default <see cref="BatchSize"/>.</summary>
    public const int DefaultBatchSize = 32;

    /// <summary>The default <see cref="TransformBatchSize"/>.</summary>
    public const int DefaultTransformBatchSize = 256;

    /// <summary>
    /// The feature column, when the module reads one: a known-size vector of <see cref="float"/> (float32 [batch, F]) or of
    /// <see cref="long"/> (int64 [batch, F], e.g. token ids). Default <c>"Features"</c>. Ignored when
    /// <see cref="FeatureColumnNames"/> is set.
    /// </summary>
    public string FeatureColumnName { get; init; } = "Features";

    /// <summary>
    /// The input columns, when the module reads several: each a known-size vector of <see cref="float"/> or <see cref="long"/>.
    /// They reach the module in this order: the training batch is <c>[input 1, …, input n, label]</c>, and the module's
    /// <see cref="Lightning.Onnx.IOnnxExportable.ExportOnnx"/> gets n inputs. A variable-length column gives two, its
    /// values padded with zeros and then its mask (int64, 1 for a value, 0 for padding; see <see cref="MaxLength"/>). Null (the default): <see cref="FeatureColumnName"/> alone.
    /// </summary>
    public IReadOnlyList<string>? FeatureColumnNames { get; init; }

    /// <summary>
    /// The length variable-length input columns are padded to; null (the default): each batch is padded to its longest row.
    /// A row longer than this fails, naming the column and the row. The saved model pads each row to it too.
    /// </summary>
    public int? MaxLength { get; init; }

    /// <summary>The input columns in forward-argument order: <see cref="FeatureColumnNames"/>, or <see cref="FeatureColumnName"/> alone.</summary>
    internal IReadOnlyList<string> InputColumnNames => FeatureColumnNames ?? [FeatureColumnName];

    /// <summary>
    /// The label column: a key (multiclass; class <c>k</c> reaches the module as index <c>k - 1</c>), a
    /// <see cref="float"/> (regression) or a <see cref="bool"/> (binary; it reaches the module as 1 or 0). Default <c>"Label"</c>.
    /// </summary>
    public string LabelColumnName { get; init; } = "Label";

    /// <summary>
    /// The Core trainer's options (epochs, precision, memory format, devices, callbacks, loggers). Null: one epoch, no
    /// progress bar, no model summary, logs and checkpoints under the current directory. With
    /// <c>MemoryFormat = "channels_last"</c> a module that unflattens the feature vector into images trains its
    /// convolutions channels-last (its conv weights are laid out so); an unknown value fails in <c>Fit</c>, naming it.
    /// </summary>
    public TrainerOptions? TrainerOptions { get; init; }

    /// <summary>Rows per training batch; at least 1.</summary>
    public int BatchSize { get; init; } = DefaultBatchSize;

    /// <summary>Rows per ONNX Runtime call when the trained model's <c>Transform</c> scores many rows; at least 1.</summary>
    public int TransformBatchSize { get; init; } = DefaultTransformBatchSize;

    /// <summary>Seeds libtorch before the module is made (its initial weights) and the per-epoch shuffle of the rows.</summary>
    public int Seed { get; init; } = 1;

    /// <summary>Rows the trainer validates on (same columns as the training data); null for none.</summary>
    public IDataView? ValidationData { get; init; }

    /// <summary>
    /// Cancels <c>Fit</c>: training stops at the next batch and <c>Fit</c> throws <see cref="OperationCanceledException"/>.
    /// (ML.NET's <c>MLContext.CancelExecution</c> cannot reach a third-party trainer, as its environment is internal.)
    /// </summary>
    public CancellationToken CancellationToken { get; init; }

    internal void Validate()
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(FeatureColumnName, nameof(FeatureColumnName));
        ArgumentException.ThrowIfNullOrWhiteSpace(LabelColumnName, nameof(LabelColumnName));
        if (FeatureColumnNames is { } names)
        {
            if (names.Count == 0 || names.Any(string.IsNullOrWhiteSpace))
                throw new ArgumentException($"{nameof(FeatureColumnNames)} must name at least one column, and no name may be empty.", nameof(FeatureColumnNames));
            if (names.GroupBy(n => n).FirstOrDefault(g => g.Count() > 1) is { } twice)
                throw new ArgumentException($"{nameof(FeatureColumnNames)} names column '{twice.Key}' twice; each input column is one forward argument.", nameof(FeatureColumnNames));
        }
        if (MaxLength is < 1)
            throw new ArgumentOutOfRangeException(nameof(MaxLength), MaxLength, $"{nameof(MaxLength)} is {MaxLength}; it must be at least 1, or null to pad each batch to its longest row.");
        if (InputColumnNames.Contains(LabelColumnName))
            throw new ArgumentException($"Column '{LabelColumnName}' is both the label and an input column.", nameof(LabelColumnName));
        if (BatchSize < 1)
            throw new ArgumentOutOfRangeException(nameof(BatchSize), BatchSize, $"{nameof(BatchSize)} is {BatchSize}; it must be at least 1.");
        if (TransformBatchSize < 1)
            throw new ArgumentOutOfRangeException(nameof(TransformBatchSize), TransformBatchSize,
                $"{nameof(TransformBatchSize)} is {TransformBatchSize}; it must be at least 1.");
    }

    internal TrainerOptions ResolvedTrainerOptions
    {
        get
        {
            var options = TrainerOptions ?? new TrainerOptions { MaxEpochs = 1, EnableProgressBar = false, EnableModelSummary = false };
            return CancellationToken.CanBeCanceled ? options with { Callbacks = [.. options.Callbacks, new CancellationCallback(CancellationToken)] } : options;
        }
    }
}
