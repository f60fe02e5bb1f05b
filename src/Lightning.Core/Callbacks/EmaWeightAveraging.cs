using System.Globalization;
using System.Text.Json.Nodes;
using Lightning.Checkpoints;
using static TorchSharp.torch;

namespace Lightning.Callbacks;

/// <summary>
/// Keeps an exponential moving average (EMA) of the module's weights during a fit, as Lightning 2.6's
/// <c>EMAWeightAveraging</c>: after optimizer steps, <c>average = decay * average + (1 - decay) * weights</c> (the first
/// update copies the weights). Validation runs with the average swapped in, and when training ends the average is
/// copied into the module. The average and its counters are saved in checkpoints, so a resumed fit continues it.
/// </summary>
/// <remarks>
/// <para>The average is taken when the fit starts (<see cref="OnFitStart"/>) from the module's weights (restored ones on
/// resume, unless the checkpoint holds this callback's average); it holds detached tensors owned by this callback,
/// released by <see cref="WeightAveraging.Dispose"/> or when the next fit is set up.</para>
/// <para>As in Lightning, an update follows the optimizer step with zero-based index <c>s</c> when
/// <c>s % updateEveryNSteps == 0</c> and, if <c>updateStartingAtStep</c> is set, <c>s &gt;= updateStartingAtStep</c>;
/// with <c>updateStartingAtEpoch</c> set, there is also an update at the end of each epoch from that one on.</para>
/// <para>With <c>useBuffers</c> (the default) buffers such as BatchNorm statistics are averaged too; otherwise they are
/// copied from the module at each update. Integer buffers are always copied.</para>
/// </remarks>
public sealed class EmaWeightAveraging : WeightAveraging
{
    private long _latestUpdateStep;
    private int _latestUpdateEpoch = -1;

    /// <summary>An EMA of the weights with Lightning's defaults.</summary>
    /// <param name="decay">The weight of the old average at each update, in [0, 1].</param>
    /// <param name="updateEveryNSteps">Update after every this many optimizer steps; 0 turns step updates off.</param>
    /// <param name="updateStartingAtStep">The first optimizer step (zero-based) that updates; null: the first.</param>
    /// <param name="updateStartingAtEpoch">Also update at the end of every epoch from this one (zero-based); null: never at epoch ends.</param>
    /// <param name="useBuffers">Average the buffers too (else they follow the module).</param>
    /// <exception cref="ArgumentOutOfRangeException">A value is outside what is allowed; the message names it.</exception>
    public EmaWeightAveraging(double decay = 0.999, int updateEveryNSteps = 1, long? updateStartingAtStep = null,
        int? updateStartingAtEpoch = null, bool useBuffers = true)
        : base(includeBuffers: true, averageBuffers: useBuffers)
    {
        if (!(decay >= 0 && decay <= 1))
            throw new ArgumentOutOfRangeException(nameof(decay), decay, $"decay = {decay.ToString(CultureInfo.InvariantCulture)} is not allowed: it must be between 0 and 1.");
        if (updateEveryNSteps < 0)
            throw new ArgumentOutOfRangeException(nameof(updateEveryNSteps), updateEveryNSteps,
                $"updateEveryNSteps = {updateEveryNSteps} is not allowed: it must be 1 or more, or 0 for no step updates.");
        if (updateStartingAtStep < 0)
            throw new ArgumentOutOfRangeException(nameof(updateStartingAtStep), updateStartingAtStep,
                $"updateStartingAtStep = {updateStartingAtStep} is not allowed: it must be 0 or more, or null.");
        if (updateStartingAtEpoch < 0)
            throw new ArgumentOutOfRangeException(nameof(updateStartingAtEpoch), updateStartingAtEpoch,
                $"updateStartingAtEpoch = {updateStartingAtEpoch} is not allowed: it must be 0 or more, or null.");
        (Decay, UpdateEveryNSteps, UpdateStartingAtStep, UpdateStartingAtEpoch, UseBuffers) =
            (decay, updateEveryNSteps, updateStartingAtStep, updateStartingAtEpoch, useBuffers);
    }

    /// <summary>The weight of the old average at each update.</summary>
    public double Decay { get; }

    /// <summary>Optimizer steps between updates (0: no step updates).</summary>
    public int UpdateEveryNSteps { get; }

    /// <summary>The first optimizer step (zero-based) that updates, if limited.</summary>
    public long? UpdateStartingAtStep { get; }

    /// <summary>The first epoch (zero-based) whose end updates, if any does.</summary>
    public int? UpdateStartingAtEpoch { get; }

    /// <summary>Whether buffers are averaged as well as parameters.</summary>
    public bool UseBuffers { get; }

    /// <summary>Whether an update is due after the optimizer step <paramref name="stepIdx"/> or the epoch <paramref name="epochIdx"/> (Lightning's <c>should_update</c>).</summary>
    /// <param name="stepIdx">The zero-based index of the optimizer step just taken, or null at an epoch end.</param>
    /// <param name="epochIdx">The zero-based index of the epoch just finished, or null after a step.</param>
    public bool ShouldUpdate(long? stepIdx = null, int? epochIdx = null)
    {
        if (stepIdx is { } step && (UpdateStartingAtStep is null || step >= UpdateStartingAtStep)
            && UpdateEveryNSteps > 0 && step % UpdateEveryNSteps == 0)
            return true;
        return epochIdx is { } epoch && UpdateStartingAtEpoch is { } start && epoch >= start;
    }

    /// <inheritdoc />
    protected override void OnFitSetup(LightningModule module)
    {
        _latestUpdateStep = 0;
        _latestUpdateEpoch = -1;
    }

    /// <summary>Starts the average from the module's weights, unless a restored checkpoint already gave one.</summary>
    public override void OnFitStart(Trainer trainer, LightningModule module)
    {
        base.OnFitStart(trainer, module);
        if (!HasAverage) StartAverage(module);
    }

    /// <inheritdoc />
    public override void OnTrainBatchEnd(Trainer trainer, LightningModule module, double? loss, object? batch, int batchIdx)
    {
        if (trainer.GlobalStep > _latestUpdateStep && ShouldUpdate(stepIdx: trainer.GlobalStep - 1))
        {
            UpdateAverage(module);
            _latestUpdateStep = trainer.GlobalStep;
        }
    }

    /// <inheritdoc />
    public override void OnTrainEpochEnd(Trainer trainer, LightningModule module)
    {
        if (trainer.CurrentEpoch > _latestUpdateEpoch && ShouldUpdate(epochIdx: trainer.CurrentEpoch))
        {
            UpdateAverage(module);
            _latestUpdateEpoch = trainer.CurrentEpoch;
        }
    }

    /// <inheritdoc />
    public override void OnTrainEnd(Trainer trainer, LightningModule module) => CopyAverageInto(module);

    /// <inheritdoc />
    public override void OnValidationEpochStart(Trainer trainer, LightningModule module) => SwapAverage(module);

    /// <inheritdoc />
    public override void OnValidationEpochEnd(Trainer trainer, LightningModule module) => SwapAverage(module);

    /// <inheritdoc />
    public override JsonObject? SaveState() => HasAverage ? base.SaveState() : null;

    /// <inheritdoc />
    protected override void SaveCounters(JsonObject state)
    {
        state["latest_update_step"] = _latestUpdateStep;
        state["latest_update_epoch"] = _latestUpdateEpoch;
    }

    /// <inheritdoc />
    protected override void LoadCounters(JsonObject state)
    {
        _latestUpdateStep = (long?)state["latest_update_step"] ?? 0;
        _latestUpdateEpoch = (int?)state["latest_update_epoch"] ?? -1;
    }

    /// <inheritdoc />
    protected override void Blend(Tensor average, Tensor value) => average.copy_(Decay * average + (1 - Decay) * value);
}
