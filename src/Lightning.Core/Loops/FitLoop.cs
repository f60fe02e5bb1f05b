using static TorchSharp.torch;

namespace Lightning.Loops;

/// <summary>
/// The epochs of a fit and when to stop (Lightning's <c>fit_loop</c>): the sanity validation, the epoch hooks, epoch
/// metrics and epoch-interval schedulers, and the stop conditions: the epoch and step limits, and
/// <see cref="Trainer.ShouldStop"/> once the minimums are reached, agreed by every process. The batches of an epoch are
/// run by the epoch loop inside it. <see cref="Trainer.FitLoop"/> is the fit running or last run.
/// </summary>
public sealed class FitLoop
{
    private readonly Trainer _trainer;
    private readonly LightningModule _module;
    private readonly ITrainingEpochLoop _epochLoop;
    private int _maxEpochs;

    internal FitLoop(Trainer trainer, LightningModule module, Func<FitLoop, ITrainingEpochLoop> epochLoop)
    {
        (_trainer, _module) = (trainer, module);
        _maxEpochs = trainer.Limits.MaxEpochs;
        _epochLoop = epochLoop(this);
    }

    /// <summary>
    /// The epoch limit in force (-1 for none); a callback may raise it for extra epochs (SWA's BatchNorm update) and
    /// lower it again.
    /// </summary>
    public int MaxEpochs
    {
        get => _maxEpochs;
        set => _maxEpochs = value >= -1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value,
            $"{nameof(MaxEpochs)} = {value} is not allowed: use a number of epochs of 0 or more, or -1 for no limit.");
    }

    /// <summary>Training batches run since the fit began, across epochs (they drive step-driven validation).</summary>
    public long TotalBatches { get; internal set; }

    /// <summary>
    /// Run the training steps for their forward passes only: no gradient zeroing, backward pass or optimizer step, while
    /// batches and epochs still count (what SWA's BatchNorm update epoch needs). Set it from an epoch-start hook and
    /// clear it at the epoch's end.
    /// </summary>
    public bool SkipBackward { get; set; }

    /// <summary>Where the fit is within its epoch.</summary>
    internal EpochPhase Phase { get; set; }

    /// <summary>Batches to skip at the start of the next epoch (mid-epoch resume).</summary>
    internal int ResumeBatches { get; set; }

    /// <summary>The random state to continue with once the skipped batches are drawn (mid-epoch resume).</summary>
    internal Tensor? ResumeRngState { get; set; }

    /// <summary>
    /// Runs up to <paramref name="count"/> training batches with optimizer steps, but without hooks, step counting,
    /// schedulers or loggers, for callbacks that tune before training (the learning-rate finder). What the steps log
    /// is forgotten afterwards; restoring the weights and the optimizer is the caller's work. It runs between epochs only.
    /// </summary>
    /// <param name="count">Batches to run at most.</param>
    /// <param name="beforeBatch">Gets each batch's index before its step.</param>
    /// <param name="afterBatch">Gets each batch's index and loss (null when the step returned none); returns false to stop.</param>
    /// <returns>The number of batches run.</returns>
    public int RunTuningSteps(int count, Action<int> beforeBatch, Func<int, double?, bool> afterBatch)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentNullException.ThrowIfNull(beforeBatch);
        ArgumentNullException.ThrowIfNull(afterBatch);
        // Inside an epoch the scratch run would throw away the epoch's own metrics.
        if (Phase != EpochPhase.BetweenEpochs)
            throw new InvalidOperationException("RunTuningSteps runs between epochs: call it from OnFitStart, OnSanityCheckStart or OnTrainStart.");
        _trainer.Metrics.BeginScratchRun();
        try
        {
            return _epochLoop.RunTuningSteps(count, beforeBatch, afterBatch);
        }
        finally
        {
            _trainer.Metrics.EndScratchRun();
        }
    }

    internal void Run()
    {
        if (_epochLoop.Validates && _trainer.Limits.SanitySteps != 0) RunSanityCheck();
        _trainer.Hooks.Call(Hooks.OnTrainStart, _module);
        while (!Done())
        {
            if (DataLoadersDue()) _epochLoop.ReloadDataLoaders();
            RunEpoch();
        }
        _trainer.Hooks.Call(Hooks.OnTrainEnd, _module);
    }

    /// <summary>True when a stop was asked for on any process and the minimums are reached: the epoch ends after this batch.</summary>
    internal bool StopRequested() => StopAgreed() && MinimumsReached();

    private bool Done()
    {
        var t = _trainer;
        if (t.MaxSteps != -1 && t.GlobalStep >= t.MaxSteps) return true;
        if (MaxEpochs != -1 && t.CurrentEpoch >= MaxEpochs) return true;
        return StopRequested();
    }

    /// <summary>
    /// A stop asked for on any process (early stopping on its own metrics, a timer) stops them all: processes that
    /// stopped apart would wait on each other's collectives. SIGINT or SIGTERM on any process ends the stage on all of
    /// them at this same batch boundary; both decisions travel in one reduction.
    /// </summary>
    private bool StopAgreed()
    {
        var t = _trainer;
        var signal = t.ReceivedSignal;
        if (t.WorldSize == 1)
        {
            if (signal is { } received) throw new TrainingInterruptedException(received);
            return t.ShouldStop;
        }
        var agreed = t.Strategy.Reduce([t.ShouldStop ? 1.0 : 0.0, signal is null ? 0.0 : 1.0], ReduceFx.Max);
        if (agreed[1] > 0) throw new TrainingInterruptedException(signal ?? System.Runtime.InteropServices.PosixSignal.SIGTERM);
        return t.ShouldStop = agreed[0] > 0;
    }

    private bool MinimumsReached() =>
        _trainer.CurrentEpoch >= (_trainer.Options.MinEpochs ?? 0) && _trainer.GlobalStep >= (_trainer.Options.MinSteps ?? 0);

    private bool DataLoadersDue() =>
        _trainer.Options.ReloadDataloadersEveryNEpochs is var every and > 0 && _trainer.DataModule is not null
        && _trainer.CurrentEpoch > 0 && _trainer.CurrentEpoch % every == 0;

    private void RunSanityCheck()
    {
        var t = _trainer;
        t.SanityChecking = true;
        t.Hooks.Call(Hooks.OnSanityCheckStart, _module);
        t.Metrics.BeginScratchRun();
        _epochLoop.RunSanityValidation(t.Limits.SanitySteps == -1 ? t.NumValBatches : Math.Min(t.Limits.SanitySteps, t.NumValBatches ?? int.MaxValue));
        t.Metrics.EndScratchRun();
        t.Hooks.Call(Hooks.OnSanityCheckEnd, _module);
        t.SanityChecking = false;
    }

    private void RunEpoch()
    {
        var t = _trainer;
        _module.train();
        Phase = EpochPhase.InBatches;
        t.EpochBatchesDone = ResumeBatches;
        t.Hooks.Call(Hooks.OnTrainEpochStart, _module);
        _epochLoop.Run(t.CurrentEpoch);
        t.Metrics.PublishEpochValues();
        t.Hooks.Call(Hooks.OnTrainEpochEnd, _module);
        t.Metrics.EndEpoch(t.Loggers, t.CurrentEpoch, Math.Max(t.GlobalStep - 1, 0), !t.Limits.LoggingOff);
        _epochLoop.UpdateSchedulers(SchedulerInterval.Epoch);
        t.CurrentEpoch++;
        t.EpochBatchesDone = 0;
        Phase = EpochPhase.BetweenEpochs;
    }
}
