using TorchSharp;
using Lightning.Data;
using Lightning.Loops.Optimization;
using static TorchSharp.torch;

namespace Lightning.Loops;

/// <summary>
/// The batches of a training epoch (Lightning's <c>training_epoch_loop</c>): one dispose scope per batch, the batch
/// hooks, automatic or manual optimization, validation when due (within the epoch and at its end), scheduler stepping,
/// and the counters that make a mid-epoch resume exact.
/// </summary>
internal sealed class TrainingEpochLoop<TBatch> : ITrainingEpochLoop
{
    private readonly Trainer _trainer;
    private readonly LightningModule<TBatch> _module;
    private readonly DataSource<TBatch> _data;
    private readonly FitLoop _fit;
    private readonly EvaluationLoop<TBatch> _validation;
    private readonly AutomaticOptimization _automatic;
    private readonly bool _hasValidationStep;
    private IEnumerable<TBatch> _train;
    private IEnumerable<TBatch>? _val;

    public TrainingEpochLoop(Trainer trainer, LightningModule<TBatch> module, DataSource<TBatch> data, FitLoop fit)
    {
        (_trainer, _module, _data, _fit) = (trainer, module, data, fit);
        _validation = new EvaluationLoop<TBatch>(trainer, module, Hooks<TBatch>.Validation);
        _automatic = new AutomaticOptimization(trainer, module, fit);
        // Lightning skips validation when the module has no validation step (its evaluation loop sets up no data).
        _hasValidationStep = module.OverridesValidationStep;
        if (!_hasValidationStep && data.ValDefined && trainer.IsGlobalZero)
            Console.Error.WriteLine($"There is a validation data loader, but {module.GetType().Name} has no ValidationStep: validation is skipped.");
        (_train, _val) = Loaders();
        trainer.NumTrainingBatches = trainer.Limits.Train.Resolve(DataLoaderLength.Of(_train), nameof(TrainerOptions.LimitTrainBatches));
        trainer.NumValBatches = _val is null ? null : trainer.Limits.Val.Resolve(DataLoaderLength.Of(_val), nameof(TrainerOptions.LimitValBatches));
    }

    public bool Validates => _val is not null && _trainer.NumValBatches is not 0;

    public void ReloadDataLoaders() => (_train, _val) = Loaders();

    public void RunSanityValidation(int? limit) => _validation.Run(_val!, sanity: true, limit: limit);

    public void Run(int epoch)
    {
        var t = _trainer;
        var skip = _fit.ResumeBatches;
        _fit.ResumeBatches = 0;
        EpochShuffler.SetEpochOf(_train, epoch);
        var limit = t.NumTrainingBatches;
        int batchIdx = 0;
        using (var batches = _train.GetEnumerator())
        {
            for (; batchIdx < skip && batches.MoveNext(); batchIdx++) { }
            if (_fit.ResumeRngState is { } state)
            {
                LightningSeed.SetRngState(state);
                state.Dispose();
                _fit.ResumeRngState = null;
            }
            while ((limit is not { } l || batchIdx < l) && batches.MoveNext())
            {
                var isLast = limit is { } n && batchIdx + 1 == n;
                if (!RunBatch(batches.Current, batchIdx, isLast)) break;
                batchIdx++;
                if (ValidationDueInEpoch(batchIdx, isLast)) RunValidation();
                if (_fit.StopRequested() || (t.MaxSteps != -1 && t.GlobalStep >= t.MaxSteps)) break;
            }
        }
        _fit.Phase = EpochPhase.AfterBatches;
        if (ValidationDueAtEpochEnd(batchIdx)) RunValidation();
    }

    public void UpdateSchedulers(SchedulerInterval interval)
    {
        var t = _trainer;
        if (!_module.AutomaticOptimization) return;
        for (int i = 0; i < t.LrSchedulerConfigs.Count; i++)
        {
            var config = t.LrSchedulerConfigs[i];
            if (config.Interval != interval) continue;
            var count = interval == SchedulerInterval.Step ? t.GlobalStep : t.CurrentEpoch + 1;
            if (count % config.Frequency != 0) continue;
            double? metric = null;
            if (config.Monitor is { } monitor)
            {
                if (!t.CallbackMetrics.TryGetValue(monitor, out var value))
                {
                    if (!config.Strict) continue;
                    throw new InvalidOperationException(
                        $"The scheduler monitors '{monitor}', which was not logged. Available metrics: [{string.Join(", ", t.CallbackMetrics.Keys)}]. " +
                        "Log it, or set Strict: false to skip the step when it is missing.");
                }
                metric = value;
            }
            t.Hooks.Call(Hooks.LrSchedulerStep, _module, (config.Scheduler, metric));
            t.SchedulerSteps[i]++;
        }
    }

    public int RunTuningSteps(int count, Action<int> beforeBatch, Func<int, double?, bool> afterBatch)
    {
        var t = _trainer;
        var optimizer = t.Optimizers.Count > 0 ? t.Optimizers[0] : throw new InvalidOperationException("Tuning needs an optimizer; ConfigureOptimizers returned none.");
        _module.train();
        int done = 0;
        foreach (var batch in _train)
        {
            if (done == count) break;
            using var scope = NewDisposeScope();
            beforeBatch(done);
            var loss = t.Hooks.Call(Hooks<TBatch>.TrainingStep, _module, (t.Strategy.BatchToDevice(batch), done));
            double? value = null;
            if (loss is not null)
            {
                optimizer.zero_grad();
                loss.backward();
                optimizer.step();
                value = loss.ToDouble();
            }
            t.Metrics.EndTrainingStep(t.Loggers, t.CurrentEpoch, 0, sendToLoggers: false);
            if (!afterBatch(done++, value)) break;
        }
        return done;
    }

    private (IEnumerable<TBatch> Train, IEnumerable<TBatch>? Val) Loaders()
    {
        var train = _data.Train();
        if (!_hasValidationStep) return (train, null);
        return (train, _trainer.Limits.ValidateOnTrainData ? train : _data.Val());
    }

    private bool ValidationDueInEpoch(int batchesDone, bool isLast)
    {
        if (!Validates || isLast) return false;
        var interval = _trainer.Options.ValCheckInterval;
        if (_trainer.Options.CheckValEveryNEpoch is null) return _fit.TotalBatches % interval.Count!.Value == 0;
        if (!EpochValidates()) return false;
        var every = interval.Count ?? (_trainer.NumTrainingBatches is { } n ? Math.Max(1, (int)(n * interval.Fraction!.Value)) : int.MaxValue);
        return batchesDone % every == 0;
    }

    private bool ValidationDueAtEpochEnd(int batchesDone)
    {
        if (!Validates || batchesDone == 0) return false;
        if (_trainer.Options.CheckValEveryNEpoch is null) return _fit.TotalBatches % _trainer.Options.ValCheckInterval.Count!.Value == 0;
        return EpochValidates();
    }

    private bool EpochValidates() => (_trainer.CurrentEpoch + 1) % _trainer.Options.CheckValEveryNEpoch!.Value == 0;

    private void RunValidation()
    {
        _validation.Run(_val!, sanity: false);
        _module.train();
    }

    /// <summary>One training batch in its own dispose scope; false when the module asks to end the epoch.</summary>
    private bool RunBatch(TBatch batch, int batchIdx, bool isLastInEpoch)
    {
        var t = _trainer;
        using var scope = NewDisposeScope();
        batch = t.Strategy.BatchToDevice(batch);
        t.Metrics.BatchSizeOfCurrentBatch = () => BatchSize.Of(batch);
        if (!t.Hooks.Call(Hooks<TBatch>.OnTrainBatchStart, _module, (batch, batchIdx))) return false;

        var stepsBefore = t.GlobalStep;
        Tensor? TrainingStep() => t.Hooks.Call(Hooks<TBatch>.TrainingStep, _module, (batch, batchIdx));
        var loss = _module.AutomaticOptimization ? _automatic.Run(TrainingStep, batchIdx, isLastInEpoch) : ManualOptimization.Run(TrainingStep);
        if (loss is not null) t.LastTrainLoss = loss;
        var stepped = t.GlobalStep > stepsBefore;
        if (stepped) UpdateSchedulers(SchedulerInterval.Step);
        t.Metrics.EndTrainingStep(t.Loggers, t.CurrentEpoch, Math.Max(t.GlobalStep - 1, 0),
            !t.Limits.LoggingOff && stepped && t.GlobalStep % t.Options.LogEveryNSteps == 0);

        // Counted before the batch-end hooks, so a checkpoint written there records this batch as done.
        t.EpochBatchesDone = batchIdx + 1;
        _fit.TotalBatches++;
        t.Hooks.Call(Hooks<TBatch>.OnTrainBatchEnd, _module, (loss, batch, batchIdx));
        t.Metrics.BatchSizeOfCurrentBatch = null;
        return true;
    }
}
