namespace Lightning.Loops;

/// <summary>What the <see cref="FitLoop"/> asks of the loop over one epoch's batches, whose data is typed by batch.</summary>
internal interface ITrainingEpochLoop
{
    /// <summary>True when validation runs: there is a validation loader with batches and the module has a validation step.</summary>
    bool Validates { get; }

    /// <summary>Asks the data source for new training and validation loaders.</summary>
    void ReloadDataLoaders();

    /// <summary>Validation on up to <paramref name="limit"/> batches whose results are thrown away.</summary>
    void RunSanityValidation(int? limit);

    /// <summary>The batches of epoch <paramref name="epoch"/> with validation when due, the epoch-end validation included.</summary>
    void Run(int epoch);

    /// <summary>Steps the schedulers of <paramref name="interval"/> that are due.</summary>
    void UpdateSchedulers(SchedulerInterval interval);

    /// <summary>See <see cref="FitLoop.RunTuningSteps"/>.</summary>
    int RunTuningSteps(int count, Action<int> beforeBatch, Func<int, double?, bool> afterBatch);
}
