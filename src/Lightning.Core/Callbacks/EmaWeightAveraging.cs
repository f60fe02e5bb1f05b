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
/// <para>The average is taken when the fit starts (<see cref="Setup"/>) from the module's weights; it holds detached
/// tensors owned by this callback, released by <see cref="Dispose"/> or when the next fit starts.</para>
/// <para>As in Lightning, an update follows the optimizer step with zero-based index <c>s</c> when
/// <c>s % updateEveryNSteps == 0</c> and, if <c>updateStartingAtStep</c> is set, <c>s &gt;= updateStartingAtStep</c>;
/// with <c>updateStartingAtEpoch</c> set, there is also an update at the end of each epoch from that one on.</para>
/// <para>With <c>useBuffers</c> (the default) buffers such as BatchNorm statistics are averaged too; otherwise they are
/// copied from the module at each update. Integer buffers are always copied.</para>
/// </remarks>
public sealed class EmaWeightAveraging : Callback, IDisposable
{
    private List<(string Name, Tensor Average, bool Averaged)> _average = [];
    private JsonObject? _pendingState;
    private bool _inFit;
    private long _averagedCount;
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

    /// <summary>How many updates the average has had.</summary>
    public long AveragedCount => _averagedCount;

    /// <summary>
    /// A copy of the averaged tensors by their <c>state_dict</c> names (parameters, then buffers); yours to dispose.
    /// Empty before the first fit.
    /// </summary>
    public IReadOnlyDictionary<string, Tensor> AverageState()
    {
        var copies = new Dictionary<string, Tensor>();
        foreach (var (name, average, _) in _average) copies[name] = average.detach().clone().DetachFromDisposeScope();
        return copies;
    }

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
    public override void Setup(Trainer trainer, LightningModule module, Stage stage)
    {
        if (stage != Stage.Fit) return;
        Release();
        using (no_grad())
        {
            foreach (var (name, parameter) in module.named_parameters())
                _average.Add((name, parameter.detach().clone().DetachFromDisposeScope(), true));
            foreach (var (name, buffer) in module.named_buffers())
                _average.Add((name, buffer.detach().clone().DetachFromDisposeScope(), UseBuffers && buffer.is_floating_point()));
        }
        _averagedCount = 0;
        _latestUpdateStep = 0;
        _latestUpdateEpoch = -1;
        _inFit = true;
        if (_pendingState is { } state)
        {
            _pendingState = null;
            LoadState(state);
        }
    }

    /// <inheritdoc />
    public override void Teardown(Trainer trainer, LightningModule module, Stage stage)
    {
        if (stage == Stage.Fit) _inFit = false;
    }

    /// <inheritdoc />
    public override void OnException(Trainer trainer, LightningModule module, Exception exception) => _inFit = false;

    /// <inheritdoc />
    public override void OnTrainBatchEnd(Trainer trainer, LightningModule module, double? loss, object? batch, int batchIdx)
    {
        if (trainer.GlobalStep > _latestUpdateStep && ShouldUpdate(stepIdx: trainer.GlobalStep - 1))
        {
            Update(module);
            _latestUpdateStep = trainer.GlobalStep;
        }
    }

    /// <inheritdoc />
    public override void OnTrainEpochEnd(Trainer trainer, LightningModule module)
    {
        if (trainer.CurrentEpoch > _latestUpdateEpoch && ShouldUpdate(epochIdx: trainer.CurrentEpoch))
        {
            Update(module);
            _latestUpdateEpoch = trainer.CurrentEpoch;
        }
    }

    /// <inheritdoc />
    public override void OnTrainEnd(Trainer trainer, LightningModule module) => CopyAverageInto(module);

    /// <inheritdoc />
    public override void OnValidationEpochStart(Trainer trainer, LightningModule module) => Swap(module);

    /// <inheritdoc />
    public override void OnValidationEpochEnd(Trainer trainer, LightningModule module) => Swap(module);

    /// <summary>A checkpoint not written with this callback's state starts the average from the restored weights.</summary>
    public override void OnLoadCheckpoint(Trainer trainer, LightningModule module, Checkpoint checkpoint)
    {
        if (_average.Count == 0) return;
        var state = module.state_dict();
        using (no_grad())
            foreach (var (name, average, _) in _average)
                if (state.TryGetValue(name, out var value)) average.copy_(value);
    }

    /// <inheritdoc />
    public override JsonObject? SaveState()
    {
        if (_average.Count == 0) return null;
        var tensors = new JsonObject();
        foreach (var (name, average, _) in _average) tensors[name] = TensorJson.ToJson(average);
        return new JsonObject
        {
            ["n_averaged"] = _averagedCount,
            ["latest_update_step"] = _latestUpdateStep,
            ["latest_update_epoch"] = _latestUpdateEpoch,
            ["average_state"] = tensors,
        };
    }

    /// <inheritdoc />
    public override void LoadState(JsonObject state)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (!_inFit)
        {
            // Restored before the fit's Setup, which makes a fresh average: apply it then.
            _pendingState = (JsonObject)state.DeepClone();
            return;
        }
        _averagedCount = (long?)state["n_averaged"] ?? 0;
        _latestUpdateStep = (long?)state["latest_update_step"] ?? 0;
        _latestUpdateEpoch = (int?)state["latest_update_epoch"] ?? -1;
        if (state["average_state"] is not JsonObject tensors) return;
        using (no_grad())
            foreach (var (name, average, _) in _average)
            {
                if (tensors[name] is not JsonObject saved)
                    throw new InvalidOperationException(
                        $"The checkpoint's {nameof(EmaWeightAveraging)} state has no average for '{name}'; it was saved for a different module.");
                using var value = TensorJson.FromJson(saved, $"average for '{name}'");
                average.copy_(value);
            }
    }

    /// <summary>Releases the averaged tensors.</summary>
    public void Dispose() => Release();

    private void Update(LightningModule module)
    {
        var current = module.state_dict();
        using var scope = NewDisposeScope();
        using (no_grad())
            foreach (var (name, average, averaged) in _average)
            {
                var value = current[name].detach();
                if (_averagedCount == 0 || !averaged) average.copy_(value);
                else average.copy_(Decay * average + (1 - Decay) * value);
            }
        _averagedCount++;
    }

    private void Swap(LightningModule module)
    {
        if (_average.Count == 0) return;
        var current = module.state_dict();
        using var scope = NewDisposeScope();
        using (no_grad())
            foreach (var (name, average, _) in _average)
            {
                var target = current[name];
                var saved = target.detach().clone();
                target.copy_(average);
                average.copy_(saved);
            }
    }

    private void CopyAverageInto(LightningModule module)
    {
        if (_average.Count == 0) return;
        var current = module.state_dict();
        using (no_grad())
            foreach (var (name, average, _) in _average)
                current[name].copy_(average);
    }

    private void Release()
    {
        foreach (var (_, average, _) in _average) average.Dispose();
        _average = [];
    }
}
