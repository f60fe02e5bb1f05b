using System.Reflection;
using System.Text.Json;
using Lightning.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning;

/// <summary>
/// A TorchSharp <see cref="nn.Module"/> that knows how to train itself: the steps, the optimizers, the hooks
/// and what to log. The batch-typed steps live on <see cref="LightningModule{TBatch}"/>; this base is what
/// trainers, callbacks and loggers see.
/// </summary>
public abstract class LightningModule : nn.Module
{
    private Dictionary<string, object?> _hparams = new();

    /// <summary>Creates the module with TorchSharp's module name <paramref name="name"/>.</summary>
    protected LightningModule(string name) : base(name) { }

    /// <summary>The trainer running this module, while one is.</summary>
    public Trainer? Trainer { get; internal set; }

    /// <summary>The hyperparameters given to <see cref="SaveHyperparameters"/>; they go into checkpoints and <c>hparams.yaml</c>.</summary>
    public IReadOnlyDictionary<string, object?> Hparams => _hparams;

    /// <summary>
    /// Records constructor arguments as hyperparameters, from an anonymous object (<c>new { hiddenDim, lr }</c>) or a
    /// dictionary. Names should match constructor parameter names so <see cref="LoadFromCheckpoint{T}"/> can rebuild the module.
    /// </summary>
    protected void SaveHyperparameters(object values)
    {
        ArgumentNullException.ThrowIfNull(values);
        foreach (var (name, value) in Arguments.ToDictionary(values, nameof(values)))
        {
            Hyperparameters.EnsureSerializable(name, value);
            _hparams[name] = value;
        }
    }

    /// <summary>The optimizer(s) to train with; an <see cref="optim.Optimizer"/> converts implicitly.</summary>
    public abstract OptimizerConfiguration ConfigureOptimizers();

    /// <summary>
    /// Logs a scalar metric. The value leaves the step as a <see cref="double"/>, so no tensor outlives the step.
    /// Defaults as Lightning: inside a step per step; inside epoch hooks per epoch (mean over the epoch).
    /// </summary>
    /// <param name="name">The metric's key in loggers and <see cref="Lightning.Trainer.CallbackMetrics"/>.</param>
    /// <param name="value">A tensor with one element.</param>
    /// <param name="progBar">Also show the value on the progress bar.</param>
    /// <param name="onStep">Log the value of each step (default: true inside training steps).</param>
    /// <param name="onEpoch">Log the epoch's mean (default: false inside training steps, true elsewhere).</param>
    public void Log(string name, Tensor value, bool progBar = false, bool? onStep = null, bool? onEpoch = null)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value.numel() != 1)
            throw new ArgumentException(
                $"Metric '{name}' must be a tensor with one element; got shape [{string.Join(", ", value.shape)}].", nameof(value));
        Log(name, value.ToDouble(), progBar, onStep, onEpoch);
    }

    /// <summary>Logs a scalar metric; see <see cref="Log(string, Tensor, bool, bool?, bool?)"/>.</summary>
    public void Log(string name, double value, bool progBar = false, bool? onStep = null, bool? onEpoch = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        Trainer?.Metrics.Record(name, value, progBar, onStep, onEpoch);
    }

    /// <summary>Called once at the start of <see cref="Lightning.Trainer.Fit{TBatch}"/>.</summary>
    public virtual void OnFitStart() { }
    /// <summary>Called once at the end of a fit.</summary>
    public virtual void OnFitEnd() { }
    /// <summary>Called before the first training epoch.</summary>
    public virtual void OnTrainStart() { }
    /// <summary>Called after the last training epoch.</summary>
    public virtual void OnTrainEnd() { }
    /// <summary>Called at the start of each training epoch.</summary>
    public virtual void OnTrainEpochStart() { }
    /// <summary>Called at the end of each training epoch.</summary>
    public virtual void OnTrainEpochEnd() { }

    /// <summary>Computes gradients of <paramref name="loss"/>; override to change how (as Lightning's <c>backward</c>).</summary>
    public virtual void Backward(Tensor loss) => loss.backward();

    /// <summary>Called when a checkpoint is written; add to <see cref="Checkpoint.Extra"/> what must survive a restart.</summary>
    public virtual void OnSaveCheckpoint(Checkpoint checkpoint) { }
    /// <summary>Called when a checkpoint is loaded, before the weights are restored.</summary>
    public virtual void OnLoadCheckpoint(Checkpoint checkpoint) { }

    /// <summary>
    /// Rebuilds a module from a checkpoint: its constructor gets the saved hyperparameters, overridden or completed by
    /// <paramref name="arguments"/> (an anonymous object or a dictionary whose names match constructor parameters, as
    /// Lightning's <c>load_from_checkpoint(path, encoder=encoder)</c>), then the weights are restored.
    /// </summary>
    public static T LoadFromCheckpoint<T>(string path, object? arguments = null) where T : LightningModule
    {
        var checkpoint = Checkpoint.Load(path);
        var given = arguments is null ? new Dictionary<string, object?>() : Arguments.ToDictionary(arguments, nameof(arguments));
        var module = (T)Arguments.Construct(typeof(T), given, checkpoint.Hyperparameters, path);
        module._hparams = Hyperparameters.Materialize(checkpoint.Hyperparameters, given);
        module.OnLoadCheckpoint(checkpoint);
        checkpoint.RestoreWeights(module);
        module.eval();
        return module;
    }

    /// <summary>TorchSharp finds submodules and parameters only once the derived constructor has run, so trainers call this first.</summary>
    internal void EnsureComponentsRegistered() => RegisterComponents();

    internal void RestoreHyperparameters(IReadOnlyDictionary<string, JsonElement> saved) =>
        _hparams = Hyperparameters.Materialize(saved, new Dictionary<string, object?>());
}

/// <summary>A <see cref="LightningModule"/> whose data loaders yield batches of type <typeparamref name="TBatch"/>.</summary>
/// <typeparam name="TBatch">The batch type, e.g. <c>IList&lt;Tensor&gt;</c> from TorchSharp's tensor datasets.</typeparam>
public abstract class LightningModule<TBatch> : LightningModule
{
    /// <summary>Creates the module with TorchSharp's module name <paramref name="name"/>.</summary>
    protected LightningModule(string name) : base(name) { }

    /// <summary>Computes the loss of one training batch; null skips the optimizer step for this batch.</summary>
    public abstract Tensor? TrainingStep(TBatch batch, int batchIdx);

    /// <summary>Called before each training batch.</summary>
    public virtual void OnTrainBatchStart(TBatch batch, int batchIdx) { }

    /// <summary>Called after each training batch with its loss (null when the step was skipped).</summary>
    public virtual void OnTrainBatchEnd(double? loss, TBatch batch, int batchIdx) { }
}
