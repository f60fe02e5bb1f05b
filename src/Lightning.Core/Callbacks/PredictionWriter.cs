using static TorchSharp.torch;

namespace Lightning.Callbacks;

/// <summary>
/// The base of callbacks that store predictions as <see cref="Trainer.Predict{TBatch}(LightningModule{TBatch}, IEnumerable{TBatch}, string?)"/>
/// makes them, as Lightning's <c>BasePredictionWriter</c>: override <see cref="WriteOnBatchEnd"/>, <see cref="WriteOnEpochEnd"/>
/// or both, and choose the <see cref="Interval"/> that calls them.
/// </summary>
/// <example><code>
/// sealed class CsvWriter(string folder) : PredictionWriter(WriteInterval.Batch)
/// {
///     public override void WriteOnBatchEnd(Trainer trainer, LightningModule module, Tensor prediction, object? batch, int batchIdx) =&gt;
///         File.WriteAllLines(Path.Combine(folder, $"{batchIdx}.csv"), prediction.data&lt;float&gt;().Select(v =&gt; v.ToString("R")));
/// }
/// </code></example>
public abstract class PredictionWriter : Callback
{
    /// <summary>A writer called at <paramref name="writeInterval"/> (Lightning's default: every batch).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="writeInterval"/> is not a <see cref="WriteInterval"/> value.</exception>
    protected PredictionWriter(WriteInterval writeInterval = WriteInterval.Batch)
    {
        if (!Enum.IsDefined(writeInterval))
            throw new ArgumentOutOfRangeException(nameof(writeInterval), writeInterval,
                $"writeInterval = {writeInterval} is not allowed: it must be one of {string.Join(", ", Enum.GetNames<WriteInterval>())}.");
        Interval = writeInterval;
    }

    /// <summary>When this writer writes.</summary>
    public WriteInterval Interval { get; }

    /// <summary>
    /// Writes the prediction of one batch. <paramref name="prediction"/> belongs to the batch's dispose scope: copy what you
    /// keep. The base method fails, so a writer with a batch interval must override it.
    /// </summary>
    /// <param name="trainer">The trainer running the prediction.</param>
    /// <param name="module">The module predicting.</param>
    /// <param name="prediction">What <see cref="LightningModule{TBatch}.PredictStep"/> returned for the batch.</param>
    /// <param name="batch">The batch.</param>
    /// <param name="batchIdx">The batch's index in the prediction epoch.</param>
    public virtual void WriteOnBatchEnd(Trainer trainer, LightningModule module, Tensor prediction, object? batch, int batchIdx) =>
        throw new NotImplementedException(
            $"{GetType().Name} writes with Interval = {Interval}, which calls WriteOnBatchEnd, but does not override it.");

    /// <summary>
    /// Writes every prediction of the epoch, in batch order. The tensors are the ones <c>Predict</c> returns to its caller:
    /// do not dispose them. The base method fails, so a writer with an epoch interval must override it.
    /// </summary>
    /// <param name="trainer">The trainer running the prediction.</param>
    /// <param name="module">The module predicting.</param>
    /// <param name="predictions">One prediction per batch.</param>
    public virtual void WriteOnEpochEnd(Trainer trainer, LightningModule module, IReadOnlyList<Tensor> predictions) =>
        throw new NotImplementedException(
            $"{GetType().Name} writes with Interval = {Interval}, which calls WriteOnEpochEnd, but does not override it.");

    /// <inheritdoc />
    public override void OnPredictBatchEnd(Trainer trainer, LightningModule module, Tensor prediction, object? batch, int batchIdx)
    {
        if (Interval is WriteInterval.Batch or WriteInterval.BatchAndEpoch)
            WriteOnBatchEnd(trainer, module, prediction, batch, batchIdx);
    }

    /// <inheritdoc />
    public override void OnPredictEpochEnd(Trainer trainer, LightningModule module, IReadOnlyList<Tensor> predictions)
    {
        if (Interval is WriteInterval.Epoch or WriteInterval.BatchAndEpoch)
            WriteOnEpochEnd(trainer, module, predictions);
    }
}
