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

/// <summary>Counters of a fit that checkpoints record.</summary>
internal interface ILoopProgress
{
    /// <summary>Training batches run since the fit began, across epochs (drives step-based validation).</summary>
    long TotalBatches { get; }
}
