namespace Lightning.Loops;

/// <summary>A running fit as callbacks that tune before training (the learning-rate finder) see it.</summary>
internal interface IFitRun
{
    /// <summary>
    /// Runs up to <paramref name="count"/> training batches with optimizer steps but no logging, hooks or step counting;
    /// <paramref name="afterBatch"/> gets each batch's loss. Returns the number of batches run.
    /// </summary>
    int RunTuningSteps(int count, Action<int> beforeBatch, Action<int, double?> afterBatch);
}

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

/// <summary>Counters of a fit that checkpoints record.</summary>
internal interface ILoopProgress
{
    /// <summary>Training batches run since the fit began, across epochs (drives step-based validation).</summary>
    long TotalBatches { get; }

    /// <summary>Where the fit is within its epoch.</summary>
    EpochPhase Phase { get; }
}
