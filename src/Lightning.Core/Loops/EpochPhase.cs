namespace Lightning.Loops;

/// <summary>Where a fit is within its epoch, so a checkpoint resumes at the right place.</summary>
internal enum EpochPhase
{
    /// <summary>Between epochs (or before the first, or after the fit): resume at <c>CurrentEpoch</c>'s first batch.</summary>
    BetweenEpochs,
    /// <summary>Running the epoch's batches: resume at the next batch of the same epoch.</summary>
    InBatches,
    /// <summary>Batches done, epoch-end work (validation, hooks, schedulers) under way: resume at the next epoch.</summary>
    AfterBatches,
}
