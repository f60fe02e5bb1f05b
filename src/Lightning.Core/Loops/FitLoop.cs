using Lightning.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Loops;

/// <summary>
/// Epochs of training batches with validation when due, hooks in Lightning's order, one dispose scope per step,
/// automatic or manual optimization, schedulers, and the progress counters that make resume exact.
/// </summary>
internal sealed class FitLoop<TBatch> : IFitRun, ILoopProgress
{
    private readonly Trainer _trainer;
    private readonly LightningModule<TBatch> _module;
    private readonly DataSource<TBatch> _data;
    private readonly EvaluationLoop<TBatch> _validation;
    private IEnumerable<TBatch> _train;
    private IEnumerable<TBatch>? _val;
    private long _totalBatches;

    public FitLoop(Trainer trainer, LightningModule<TBatch> module, DataSource<TBatch> data)
    {
        (_trainer, _module, _data) = (trainer, module, data);
        _validation = new EvaluationLoop<TBatch>(trainer, module, Stage.Validate);
        if (trainer.Selection.Replicas > 1 && !module.AutomaticOptimization)
            throw new NotSupportedException(
                "Strategy \"dp\" splits each batch across replicas inside automatic optimization; with AutomaticOptimization = false use one device.");
        _train = data.Train();
        _val = trainer.Limits.ValidateOnTrainData ? _train : data.Val();
        trainer.MaxEpochs = trainer.Limits.MaxEpochs;
        trainer.NumTrainingBatches = trainer.Limits.Train.Resolve(DataLoaderLength.Of(_train), nameof(TrainerOptions.LimitTrainBatches));
        trainer.NumValBatches = _val is null ? null : trainer.Limits.Val.Resolve(DataLoaderLength.Of(_val), nameof(TrainerOptions.LimitValBatches));
    }

    private optim.Optimizer? Optimizer => _trainer.Optimizers.Count > 0 ? _trainer.Optimizers[0] : null;

    /// <summary>Batches to skip at the start of the first epoch, and the random state to continue with (resume).</summary>
    public int ResumeBatches { get; set; }
    public Tensor? ResumeRngState { get; set; }
    public long TotalBatches { get => _totalBatches; set => _totalBatches = value; }
    public EpochPhase Phase { get; private set; }

    public void Run()
    {
        if (_val is not null && _trainer.NumValBatches is not 0 && _trainer.Limits.SanitySteps != 0)
            RunSanityCheck();

        _trainer.CallHooks("on_train_start", c => c.OnTrainStart(_trainer, _module), _module.OnTrainStart);
        while (!Done())
        {
            if (_trainer.Options.ReloadDataloadersEveryNEpochs is var every and > 0 && _data.DataModule is not null
                && _trainer.CurrentEpoch > 0 && _trainer.CurrentEpoch % every == 0)
            {
                _train = _data.Train();
                _val = _trainer.Limits.ValidateOnTrainData ? _train : _data.Val();
            }
            RunEpoch();
        }
        _trainer.CallHooks("on_train_end", c => c.OnTrainEnd(_trainer, _module), _module.OnTrainEnd);
    }

    private bool Done()
    {
        var t = _trainer;
        if (t.MaxSteps != -1 && t.GlobalStep >= t.MaxSteps) return true;
        if (t.MaxEpochs != -1 && t.CurrentEpoch >= t.MaxEpochs) return true;
        return StopAgreed() && MinimumsReached();
    }

    /// <summary>
    /// Under "ddp" a stop asked for on any rank (early stopping on its own metrics, a timer) stops them all, as Lightning's
    /// <c>reduce_boolean_decision</c>: ranks that stopped apart would wait on each other's collectives.
    /// </summary>
    private bool StopAgreed()
    {
        if (_trainer.Ddp is { WorldSize: > 1 } ddp)
            _trainer.ShouldStop = ddp.AllReduce([_trainer.ShouldStop ? 1.0 : 0.0], ReduceFx.Max)[0] > 0;
        return _trainer.ShouldStop;
    }

    private bool MinimumsReached() =>
        _trainer.CurrentEpoch >= (_trainer.Options.MinEpochs ?? 0) && _trainer.GlobalStep >= (_trainer.Options.MinSteps ?? 0);

    private void RunSanityCheck()
    {
        var t = _trainer;
        t.SanityChecking = true;
        t.CallHooks("on_sanity_check_start", c => c.OnSanityCheckStart(t, _module), null);
        t.Metrics.BeginSanityCheck();
        var steps = t.Limits.SanitySteps == -1 ? t.NumValBatches : Math.Min(t.Limits.SanitySteps, t.NumValBatches ?? int.MaxValue);
        _validation.Run(_val!, sanity: true, limit: steps);
        t.Metrics.EndSanityCheck();
        t.CallHooks("on_sanity_check_end", c => c.OnSanityCheckEnd(t, _module), null);
        t.SanityChecking = false;
    }

    private void RunEpoch()
    {
        var t = _trainer;
        var epoch = t.CurrentEpoch;
        var skip = ResumeBatches;
        ResumeBatches = 0;
        EpochShuffler.SetEpochOf(_train, epoch);
        _module.train();
        Phase = EpochPhase.InBatches;
        t.EpochBatchesDone = skip;
        t.Metrics.Context = HookContext.TrainingEpoch;
        t.Metrics.Hook = "on_train_epoch_start";
        t.CallHooks("on_train_epoch_start", c => c.OnTrainEpochStart(t, _module), _module.OnTrainEpochStart);

        var limit = t.NumTrainingBatches;
        int batchIdx = 0;
        using (var batches = _train.GetEnumerator())
        {
            for (; batchIdx < skip && batches.MoveNext(); batchIdx++) { }
            if (ResumeRngState is { } state)
            {
                LibTorch.SetRngState(state);
                state.Dispose();
                ResumeRngState = null;
            }
            while ((limit is not { } l || batchIdx < l) && batches.MoveNext())
            {
                var isLast = limit is { } n && batchIdx + 1 == n;
                if (!RunBatch(batches.Current, batchIdx, isLast)) break;
                batchIdx++;
                if (ValidationDueInEpoch(batchIdx, isLast)) RunValidation();
                if ((StopAgreed() && MinimumsReached()) || (t.MaxSteps != -1 && t.GlobalStep >= t.MaxSteps)) break;
            }
        }
        Phase = EpochPhase.AfterBatches;
        if (ValidationDueAtEpochEnd(batchIdx)) RunValidation();

        t.Metrics.Context = HookContext.TrainingEpoch;
        t.Metrics.Hook = "on_train_epoch_end";
        t.Metrics.PublishEpochValues();
        t.CallEpochEndHooks("on_train_epoch_end", c => c.OnTrainEpochEnd(t, _module), _module.OnTrainEpochEnd);
        t.Metrics.EndEpoch(t.Loggers, epoch, Math.Max(t.GlobalStep - 1, 0), !t.Limits.LoggingOff);
        t.Metrics.Context = HookContext.None;
        StepSchedulers(SchedulerInterval.Epoch);
        t.CurrentEpoch++;
        t.EpochBatchesDone = 0;
        Phase = EpochPhase.BetweenEpochs;
    }

    private bool ValidationDueInEpoch(int batchesDone, bool isLast)
    {
        if (_val is null || _trainer.NumValBatches is 0 || isLast) return false;
        var interval = _trainer.Options.ValCheckInterval;
        if (_trainer.Options.CheckValEveryNEpoch is null) return _totalBatches % interval.Count!.Value == 0;
        if (!EpochValidates()) return false;
        var every = interval.Count ?? (_trainer.NumTrainingBatches is { } n ? Math.Max(1, (int)(n * interval.Fraction!.Value)) : int.MaxValue);
        return batchesDone % every == 0;
    }

    private bool ValidationDueAtEpochEnd(int batchesDone)
    {
        if (_val is null || _trainer.NumValBatches is 0 || batchesDone == 0) return false;
        if (_trainer.Options.CheckValEveryNEpoch is null) return _totalBatches % _trainer.Options.ValCheckInterval.Count!.Value == 0;
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
        batch = t.Transfer(batch);
        t.Metrics.Context = HookContext.TrainingStep;
        t.Metrics.Hook = "training_step";
        t.Metrics.BatchSizeOfCurrentBatch = () => BatchSize.Of(batch);
        t.CallHooks("on_train_batch_start", c => c.OnTrainBatchStart(t, _module, batch, batchIdx), null);
        if (!_module.OnTrainBatchStart(batch, batchIdx)) return false;

        var stepsBefore = t.GlobalStep;
        double? loss = _module.AutomaticOptimization ? AutomaticStep(batch, batchIdx, isLastInEpoch) : ManualStep(batch, batchIdx);
        if (loss is not null) t.LastTrainLoss = loss;
        var stepped = t.GlobalStep > stepsBefore;
        if (stepped) StepSchedulers(SchedulerInterval.Step);
        t.Metrics.EndTrainingStep(t.Loggers, t.CurrentEpoch, Math.Max(t.GlobalStep - 1, 0),
            !t.Limits.LoggingOff && stepped && t.GlobalStep % t.Options.LogEveryNSteps == 0);

        // Counted before the batch-end hooks, so a checkpoint written there records this batch as done.
        t.EpochBatchesDone = batchIdx + 1;
        _totalBatches++;
        t.CallHooks("on_train_batch_end", c => c.OnTrainBatchEnd(t, _module, loss, batch, batchIdx), () => _module.OnTrainBatchEnd(loss, batch, batchIdx));
        t.Metrics.BatchSizeOfCurrentBatch = null;
        return true;
    }

    private double? AutomaticStep(TBatch batch, int batchIdx, bool isLastInEpoch)
    {
        var t = _trainer;
        var k = t.AccumulateGradBatches;
        var optimizer = Optimizer;
        bool stepping = optimizer is not null && !t.SkipBackward && ((batchIdx + 1) % k == 0 || isLastInEpoch);
        bool firstOfWindow = batchIdx % k == 0;
        Tensor? loss = null;

        Tensor Closure()
        {
            using (t.Profile("training_step"))
                loss = t.Selection.Replicas > 1 ? DataParallelStep(batch, batchIdx) : SingleStep(batch, batchIdx);
            if (loss is null || optimizer is null || t.SkipBackward) return loss!;
            if (firstOfWindow)
            {
                t.CallHooks("on_before_zero_grad", c => c.OnBeforeZeroGrad(t, _module, optimizer), () => _module.OnBeforeZeroGrad(optimizer));
                _module.OptimizerZeroGrad(t.CurrentEpoch, batchIdx, optimizer);
            }
            // Summed over k batches, each batch's loss counts 1/k so the step matches one large batch.
            t.RunBackward(_module, k > 1 ? loss / k : loss);
            return loss;
        }

        if (stepping)
        {
            Tensor StepClosure()
            {
                var result = Closure();
                if (result is null) throw new SkippedStep(counted: false);
                // Skipped on accumulation batches: only the stepping batch's closure averages the summed gradients.
                t.Ddp?.AverageGradients(_module.parameters());
                // Clipping and the hook see true gradients, so undo loss scaling first.
                t.Scaler?.Unscale(optimizer!);
                t.CallHooks("on_before_optimizer_step", c => c.OnBeforeOptimizerStep(t, _module, optimizer!), () => _module.OnBeforeOptimizerStep(optimizer!));
                _module.ConfigureGradientClipping(optimizer!, t.Options.GradientClipVal, t.Options.GradientClipAlgorithm);
                if (t.Scaler is { FoundInf: true }) throw new SkippedStep(counted: true);
                return result;
            }
            try
            {
                using (t.Profile("optimizer_step")) _module.OptimizerStep(t.CurrentEpoch, batchIdx, optimizer!, StepClosure);
                t.GlobalStep++;
            }
            catch (SkippedStep skipped)
            {
                // An overflow skip still counts as a step, as in Lightning, so schedules stay aligned.
                if (skipped.Counted) t.GlobalStep++;
            }
            t.Scaler?.Update();
        }
        else
        {
            Closure();
        }
        return loss?.ToDouble();
    }

    private Tensor? SingleStep(TBatch batch, int batchIdx)
    {
        using (_trainer.ForwardContext()) return _module.TrainingStep(batch, batchIdx);
    }

    /// <summary>
    /// Strategy "dp": each replica runs the training step on its chunk of the batch on its own thread (with its own
    /// dispose scope and autocast state, both per thread); the losses are gathered into the share-weighted mean, whose
    /// gradient is the full batch's, and backward and the optimizer step then run once. Logged values are reduced the
    /// same way. CPU replicas share the module's weights, so no broadcast is needed after the step.
    /// </summary>
    private Tensor? DataParallelStep(TBatch batch, int batchIdx)
    {
        var chunks = BatchSplit.Split(batch, _trainer.Selection.Replicas);
        var losses = new Tensor?[chunks.Count];
        var logs = new List<(string, double, bool, bool?, bool?, ReduceFx, int?, bool)>[chunks.Count];
        Parallel.For(0, chunks.Count, new ParallelOptions { MaxDegreeOfParallelism = chunks.Count }, r =>
        {
            using var scope = NewDisposeScope();
            logs[r] = MetricsConnector.AsReplica(() =>
            {
                using (_trainer.ForwardContext()) losses[r] = _module.TrainingStep(chunks[r].Chunk, batchIdx)?.DetachFromDisposeScope();
            });
        });
        _trainer.Metrics.MergeReplicaLogs(logs.Select((l, r) => (l, chunks[r].Share)).ToList());
        if (losses.Any(l => l is null))
        {
            foreach (var l in losses) l?.Dispose();
            return null;
        }
        var gathered = losses.Select((l, r) => l! * chunks[r].Share).Aggregate((a, b) => a + b);
        foreach (var l in losses) l!.Dispose();
        return gathered;
    }

    private double? ManualStep(TBatch batch, int batchIdx)
    {
        Tensor? loss;
        using (_trainer.Profile("training_step"))
        using (_trainer.ForwardContext())
            loss = _module.TrainingStep(batch, batchIdx);
        return loss?.ToDouble();
    }

    private void StepSchedulers(SchedulerInterval interval)
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
            _module.LrSchedulerStep(config.Scheduler, metric);
            t.SchedulerSteps[i]++;
        }
    }

    public int RunTuningSteps(int count, Action<int> beforeBatch, Action<int, double?> afterBatch)
    {
        var optimizer = Optimizer ?? throw new InvalidOperationException("Tuning needs an optimizer; ConfigureOptimizers returned none.");
        _module.train();
        int done = 0;
        foreach (var batch in _train)
        {
            if (done == count) break;
            using var scope = NewDisposeScope();
            beforeBatch(done);
            _trainer.Metrics.Context = HookContext.TrainingStep;
            Tensor? loss;
            using (_trainer.ForwardContext()) loss = _module.TrainingStep(_trainer.Transfer(batch), done);
            double? value = null;
            if (loss is not null)
            {
                optimizer.zero_grad();
                loss.backward();
                optimizer.step();
                value = loss.ToDouble();
            }
            _trainer.Metrics.EndTrainingStep(_trainer.Loggers, _trainer.CurrentEpoch, 0, sendToLoggers: false);
            afterBatch(done++, value);
        }
        _trainer.Metrics.Context = HookContext.None;
        return done;
    }

    /// <summary>Thrown out of the optimizer's closure so the optimizer does not step: the training step returned null, or scaled gradients overflowed.</summary>
    private sealed class SkippedStep(bool counted) : Exception
    {
        public bool Counted { get; } = counted;
    }
}
