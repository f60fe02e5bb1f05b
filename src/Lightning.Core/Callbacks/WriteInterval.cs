namespace Lightning.Callbacks;

/// <summary>When a <see cref="PredictionWriter"/> writes (Lightning's <c>write_interval</c>).</summary>
public enum WriteInterval
{
    /// <summary>After every prediction batch, through <see cref="PredictionWriter.WriteOnBatchEnd"/>.</summary>
    Batch,
    /// <summary>Once, after the prediction epoch, through <see cref="PredictionWriter.WriteOnEpochEnd"/>.</summary>
    Epoch,
    /// <summary>Both after every batch and after the epoch.</summary>
    BatchAndEpoch,
}
