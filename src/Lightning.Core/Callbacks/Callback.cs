using System.Text.Json.Nodes;
using Lightning.Checkpoints;
using static TorchSharp.torch;

namespace Lightning.Callbacks;

/// <summary>
/// A self-contained addition to training. Every hook is a no-op; override what you need. A callback reads the
/// trainer's state and writes only its own (and <see cref="Trainer.ShouldStop"/>). Hooks run in Lightning's order:
/// for each event, callbacks first (in list order, checkpoint callbacks last), then the module.
/// </summary>
public abstract class Callback
{
    /// <summary>The key of this callback's state in checkpoints; override when several instances may coexist.</summary>
    public virtual string StateKey => GetType().Name;

    /// <summary>Checkpoint-like callbacks (monitoring ones) run after the module at epoch ends, and after every other callback.</summary>
    public virtual bool RunsLast => false;

    /// <summary>Called when a stage begins, before the module's <see cref="LightningModule.Setup"/>.</summary>
    public virtual void Setup(Trainer trainer, LightningModule module, Stage stage) { }
    /// <summary>Called when a stage ends.</summary>
    public virtual void Teardown(Trainer trainer, LightningModule module, Stage stage) { }
    /// <summary>Called when a fit starts.</summary>
    public virtual void OnFitStart(Trainer trainer, LightningModule module) { }
    /// <summary>Called when a fit ends.</summary>
    public virtual void OnFitEnd(Trainer trainer, LightningModule module) { }
    /// <summary>Called before the sanity validation that precedes training.</summary>
    public virtual void OnSanityCheckStart(Trainer trainer, LightningModule module) { }
    /// <summary>Called after the sanity validation.</summary>
    public virtual void OnSanityCheckEnd(Trainer trainer, LightningModule module) { }
    /// <summary>Called before the first training epoch.</summary>
    public virtual void OnTrainStart(Trainer trainer, LightningModule module) { }
    /// <summary>Called after the last training epoch.</summary>
    public virtual void OnTrainEnd(Trainer trainer, LightningModule module) { }
    /// <summary>Called at the start of each training epoch.</summary>
    public virtual void OnTrainEpochStart(Trainer trainer, LightningModule module) { }
    /// <summary>Called at the end of each training epoch, after any validation of that epoch.</summary>
    public virtual void OnTrainEpochEnd(Trainer trainer, LightningModule module) { }
    /// <summary>Called before each training batch.</summary>
    public virtual void OnTrainBatchStart(Trainer trainer, LightningModule module, object? batch, int batchIdx) { }
    /// <summary>Called after each training batch with its loss (null when the step was skipped).</summary>
    public virtual void OnTrainBatchEnd(Trainer trainer, LightningModule module, double? loss, object? batch, int batchIdx) { }
    /// <summary>Called when validation starts (also during the sanity check).</summary>
    public virtual void OnValidationStart(Trainer trainer, LightningModule module) { }
    /// <summary>Called when validation ends.</summary>
    public virtual void OnValidationEnd(Trainer trainer, LightningModule module) { }
    /// <summary>Called at the start of a validation epoch.</summary>
    public virtual void OnValidationEpochStart(Trainer trainer, LightningModule module) { }
    /// <summary>Called at the end of a validation epoch; epoch metrics are in <see cref="Trainer.CallbackMetrics"/>.</summary>
    public virtual void OnValidationEpochEnd(Trainer trainer, LightningModule module) { }
    /// <summary>Called before each validation batch.</summary>
    public virtual void OnValidationBatchStart(Trainer trainer, LightningModule module, object? batch, int batchIdx) { }
    /// <summary>Called after each validation batch.</summary>
    public virtual void OnValidationBatchEnd(Trainer trainer, LightningModule module, object? batch, int batchIdx) { }
    /// <summary>Called when testing starts.</summary>
    public virtual void OnTestStart(Trainer trainer, LightningModule module) { }
    /// <summary>Called when testing ends.</summary>
    public virtual void OnTestEnd(Trainer trainer, LightningModule module) { }
    /// <summary>Called at the start of a test epoch.</summary>
    public virtual void OnTestEpochStart(Trainer trainer, LightningModule module) { }
    /// <summary>Called at the end of a test epoch.</summary>
    public virtual void OnTestEpochEnd(Trainer trainer, LightningModule module) { }
    /// <summary>Called before each test batch.</summary>
    public virtual void OnTestBatchStart(Trainer trainer, LightningModule module, object? batch, int batchIdx) { }
    /// <summary>Called after each test batch.</summary>
    public virtual void OnTestBatchEnd(Trainer trainer, LightningModule module, object? batch, int batchIdx) { }
    /// <summary>Called when prediction starts.</summary>
    public virtual void OnPredictStart(Trainer trainer, LightningModule module) { }
    /// <summary>Called when prediction ends.</summary>
    public virtual void OnPredictEnd(Trainer trainer, LightningModule module) { }
    /// <summary>Called at the start of a prediction epoch.</summary>
    public virtual void OnPredictEpochStart(Trainer trainer, LightningModule module) { }
    /// <summary>Called at the end of a prediction epoch with every prediction of the epoch.</summary>
    public virtual void OnPredictEpochEnd(Trainer trainer, LightningModule module, IReadOnlyList<Tensor> predictions) { }
    /// <summary>Called before each prediction batch.</summary>
    public virtual void OnPredictBatchStart(Trainer trainer, LightningModule module, object? batch, int batchIdx) { }
    /// <summary>Called after each prediction batch with its prediction (valid until the method returns unless detached).</summary>
    public virtual void OnPredictBatchEnd(Trainer trainer, LightningModule module, Tensor prediction, object? batch, int batchIdx) { }
    /// <summary>Called before gradients are zeroed.</summary>
    public virtual void OnBeforeZeroGrad(Trainer trainer, LightningModule module, optim.Optimizer optimizer) { }
    /// <summary>Called before the backward pass of <paramref name="loss"/>.</summary>
    public virtual void OnBeforeBackward(Trainer trainer, LightningModule module, Tensor loss) { }
    /// <summary>Called after the backward pass, before the optimizer step.</summary>
    public virtual void OnAfterBackward(Trainer trainer, LightningModule module) { }
    /// <summary>Called before the optimizer steps, with unscaled gradients and before clipping.</summary>
    public virtual void OnBeforeOptimizerStep(Trainer trainer, LightningModule module, optim.Optimizer optimizer) { }
    /// <summary>Called when a run fails, before the exception propagates.</summary>
    public virtual void OnException(Trainer trainer, LightningModule module, Exception exception) { }
    /// <summary>Called when a checkpoint is written, after the module's hook.</summary>
    public virtual void OnSaveCheckpoint(Trainer trainer, LightningModule module, Checkpoint checkpoint) { }
    /// <summary>Called when a checkpoint is restored, before this callback's state is loaded.</summary>
    public virtual void OnLoadCheckpoint(Trainer trainer, LightningModule module, Checkpoint checkpoint) { }

    /// <summary>This callback's state for checkpoints; null when it has none.</summary>
    public virtual JsonObject? SaveState() => null;
    /// <summary>Restores what <see cref="SaveState"/> returned.</summary>
    public virtual void LoadState(JsonObject state) { }
}
