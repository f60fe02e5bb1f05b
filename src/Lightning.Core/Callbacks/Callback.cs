using System.Text.Json.Nodes;
using Lightning.Checkpoints;

namespace Lightning.Callbacks;

/// <summary>
/// A self-contained addition to training. Every hook is a no-op; override what you need. A callback reads the
/// trainer's state and writes only its own (and <see cref="Trainer.ShouldStop"/>).
/// </summary>
public abstract class Callback
{
    /// <summary>The key of this callback's state in checkpoints; override when several instances may coexist.</summary>
    public virtual string StateKey => GetType().Name;

    /// <summary>Checkpoint callbacks run after every other callback and after the module at epoch ends.</summary>
    internal virtual bool IsCheckpoint => false;

    /// <summary>Called when a fit starts.</summary>
    public virtual void OnFitStart(Trainer trainer, LightningModule module) { }
    /// <summary>Called when a fit ends.</summary>
    public virtual void OnFitEnd(Trainer trainer, LightningModule module) { }
    /// <summary>Called before the first training epoch.</summary>
    public virtual void OnTrainStart(Trainer trainer, LightningModule module) { }
    /// <summary>Called after the last training epoch.</summary>
    public virtual void OnTrainEnd(Trainer trainer, LightningModule module) { }
    /// <summary>Called at the start of each training epoch.</summary>
    public virtual void OnTrainEpochStart(Trainer trainer, LightningModule module) { }
    /// <summary>Called at the end of each training epoch.</summary>
    public virtual void OnTrainEpochEnd(Trainer trainer, LightningModule module) { }
    /// <summary>Called before each training batch.</summary>
    public virtual void OnTrainBatchStart(Trainer trainer, LightningModule module, object? batch, int batchIdx) { }
    /// <summary>Called after each training batch with its loss (null when the step was skipped).</summary>
    public virtual void OnTrainBatchEnd(Trainer trainer, LightningModule module, double? loss, object? batch, int batchIdx) { }
    /// <summary>Called when a fit fails, before the exception propagates.</summary>
    public virtual void OnException(Trainer trainer, LightningModule module, Exception exception) { }
    /// <summary>Called when a checkpoint is written, after the module's hook.</summary>
    public virtual void OnSaveCheckpoint(Trainer trainer, LightningModule module, Checkpoint checkpoint) { }

    /// <summary>This callback's state for checkpoints; null when it has none.</summary>
    public virtual JsonObject? SaveState() => null;
    /// <summary>Restores what <see cref="SaveState"/> returned.</summary>
    public virtual void LoadState(JsonObject state) { }
}
