using System.Text.Json;
using System.Reflection;
using Lightning.Checkpoints;
using Lightning.Loops;
using Lightning.Loops.Optimization;
using Lightning.Metrics;
using Lightning.Precision;
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
    private Dictionary<IntPtr, bool> _toggledRequiresGrad = new();

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
    /// Defaults as Lightning: inside training steps per step; inside validation/test steps and epoch hooks per epoch.
    /// </summary>
    /// <param name="name">The metric's key in loggers and <see cref="Lightning.Trainer.CallbackMetrics"/>.</param>
    /// <param name="value">A tensor with one element.</param>
    /// <param name="progBar">Also show the value on the progress bar.</param>
    /// <param name="onStep">Log the value of each step (default: true inside training steps only).</param>
    /// <param name="onEpoch">Log the epoch's reduced value (default: false inside training steps, true elsewhere).
    /// With both on, the keys are <c>name_step</c> and <c>name_epoch</c>.</param>
    /// <param name="reduceFx">How step values become the epoch value.</param>
    /// <param name="batchSize">The weight of this value in an epoch mean (default: the batch's first dimension).</param>
    /// <param name="logger">Send the value to the loggers (else only to callbacks and the progress bar).</param>
    /// <param name="syncDist">Under "ddp", reduce the value across ranks with <paramref name="reduceFx"/> (an epoch mean
    /// from every rank's samples); without it each rank keeps its own value. No effect in a single process.</param>
    public void Log(string name, Tensor value, bool progBar = false, bool? onStep = null, bool? onEpoch = null,
        ReduceFx reduceFx = ReduceFx.Mean, int? batchSize = null, bool logger = true, bool syncDist = false)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value.numel() != 1)
            throw new ArgumentException(
                $"Metric '{name}' must be a tensor with one element; got shape [{string.Join(", ", value.shape)}].", nameof(value));
        Log(name, value.ToDouble(), progBar, onStep, onEpoch, reduceFx, batchSize, logger, syncDist);
    }

    /// <summary>Logs a scalar metric; see <see cref="Log(string, Tensor, bool, bool?, bool?, ReduceFx, int?, bool, bool)"/>.</summary>
    public void Log(string name, double value, bool progBar = false, bool? onStep = null, bool? onEpoch = null,
        ReduceFx reduceFx = ReduceFx.Mean, int? batchSize = null, bool logger = true, bool syncDist = false)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        Trainer?.Metrics.Record(new LoggedMetric(name, value, progBar, onStep, onEpoch, reduceFx, batchSize, logger, syncDist));
    }

    /// <summary>
    /// Logs a metric object (Lightning's <c>self.log(name, metric)</c>): per epoch, the trainer calls
    /// <see cref="Metric.Compute"/> at the epoch's end (over every rank under "ddp") and then <see cref="Metric.Reset"/>;
    /// per step, the value is <see cref="Metric.BatchValue"/>, so call <see cref="Metric.Forward"/> in the step.
    /// </summary>
    /// <param name="name">The metric's key in loggers and <see cref="Lightning.Trainer.CallbackMetrics"/>.</param>
    /// <param name="metric">A metric whose value has one element (not a <see cref="ConfusionMatrix"/>).</param>
    /// <param name="progBar">Also show the value on the progress bar.</param>
    /// <param name="onStep">Log the batch's value (default: true inside training steps only).</param>
    /// <param name="onEpoch">Log the epoch's value (default: false inside training steps, true elsewhere). With both on,
    /// the keys are <c>name_step</c> and <c>name_epoch</c>.</param>
    /// <param name="logger">Send the value to the loggers (else only to callbacks and the progress bar).</param>
    /// <remarks>There is no <c>syncDist</c>: the metric syncs its own state across ranks, exactly, before computing.</remarks>
    public void Log(string name, Metric metric, bool progBar = false, bool? onStep = null, bool? onEpoch = null, bool logger = true)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(metric);
        if (!metric.IsScalar)
            throw new ArgumentException($"Log('{name}') needs a metric with one value; {metric.Name} computes a matrix. Compute it in an epoch hook instead.", nameof(metric));
        if (Trainer is not { } trainer) return;
        if (trainer.Strategy.WorldSize > 1) metric.DistributedStrategy = trainer.Strategy;
        trainer.Metrics.Record(new LoggedMetric(name, double.NaN, progBar, onStep, onEpoch, ReduceFx.Mean, null, logger, false, metric));
    }

    /// <summary>Logs several metrics with the same settings (Lightning's <c>log_dict</c>).</summary>
    public void LogDict(IReadOnlyDictionary<string, double> values, bool progBar = false, bool? onStep = null, bool? onEpoch = null,
        ReduceFx reduceFx = ReduceFx.Mean, int? batchSize = null, bool logger = true, bool syncDist = false)
    {
        ArgumentNullException.ThrowIfNull(values);
        foreach (var (name, value) in values) Log(name, value, progBar, onStep, onEpoch, reduceFx, batchSize, logger, syncDist);
    }

    /// <summary>
    /// False hands optimization to <see cref="LightningModule{TBatch}.TrainingStep"/>: it calls <see cref="Optimizers"/>,
    /// <see cref="ManualBackward"/> and <see cref="LightningOptimizer.Step"/> itself (Lightning's manual optimization).
    /// </summary>
    public bool AutomaticOptimization { get; set; } = true;

    /// <summary>Called when a stage begins (after the datamodule's setup).</summary>
    public virtual void Setup(Stage stage) { }
    /// <summary>Called when a stage ends.</summary>
    public virtual void Teardown(Stage stage) { }
    /// <summary>Called once at the start of a fit, after the optimizers are configured.</summary>
    public virtual void OnFitStart() { }
    /// <summary>Called once at the end of a fit.</summary>
    public virtual void OnFitEnd() { }
    /// <summary>Called before the first training epoch.</summary>
    public virtual void OnTrainStart() { }
    /// <summary>Called after the last training epoch.</summary>
    public virtual void OnTrainEnd() { }
    /// <summary>Called at the start of each training epoch.</summary>
    public virtual void OnTrainEpochStart() { }
    /// <summary>Called at the end of each training epoch, after any validation of that epoch.</summary>
    public virtual void OnTrainEpochEnd() { }
    /// <summary>Called when validation starts.</summary>
    public virtual void OnValidationStart() { }
    /// <summary>Called when validation ends.</summary>
    public virtual void OnValidationEnd() { }
    /// <summary>Called at the start of a validation epoch.</summary>
    public virtual void OnValidationEpochStart() { }
    /// <summary>Called at the end of a validation epoch.</summary>
    public virtual void OnValidationEpochEnd() { }
    /// <summary>Switches to evaluation for validation; the default calls <c>eval()</c>.</summary>
    public virtual void OnValidationModelEval() => eval();
    /// <summary>Switches back to training after validation; the default calls <c>train()</c>.</summary>
    public virtual void OnValidationModelTrain() => train();
    /// <summary>Called when testing starts.</summary>
    public virtual void OnTestStart() { }
    /// <summary>Called when testing ends.</summary>
    public virtual void OnTestEnd() { }
    /// <summary>Called at the start of a test epoch.</summary>
    public virtual void OnTestEpochStart() { }
    /// <summary>Called at the end of a test epoch.</summary>
    public virtual void OnTestEpochEnd() { }
    /// <summary>Switches to evaluation for testing; the default calls <c>eval()</c>.</summary>
    public virtual void OnTestModelEval() => eval();
    /// <summary>Switches back after testing; the default calls <c>train()</c>.</summary>
    public virtual void OnTestModelTrain() => train();
    /// <summary>Called when prediction starts.</summary>
    public virtual void OnPredictStart() { }
    /// <summary>Called when prediction ends.</summary>
    public virtual void OnPredictEnd() { }
    /// <summary>Called at the start of a prediction epoch.</summary>
    public virtual void OnPredictEpochStart() { }
    /// <summary>Called at the end of a prediction epoch.</summary>
    public virtual void OnPredictEpochEnd() { }
    /// <summary>Switches to evaluation for prediction; the default calls <c>eval()</c>.</summary>
    public virtual void OnPredictModelEval() => eval();

    /// <summary>Called before gradients are zeroed.</summary>
    public virtual void OnBeforeZeroGrad(optim.Optimizer optimizer) { }
    /// <summary>Zeroes the gradients; override to change how.</summary>
    public virtual void OptimizerZeroGrad(int epoch, int batchIdx, optim.Optimizer optimizer) => optimizer.zero_grad();
    /// <summary>Called before the backward pass.</summary>
    public virtual void OnBeforeBackward(Tensor loss) { }
    /// <summary>Computes gradients of <paramref name="loss"/>; override to change how (as Lightning's <c>backward</c>).</summary>
    public virtual void Backward(Tensor loss) => loss.backward();
    /// <summary>Called after the backward pass.</summary>
    public virtual void OnAfterBackward() { }
    /// <summary>Called before the optimizer steps, before gradient clipping.</summary>
    public virtual void OnBeforeOptimizerStep(optim.Optimizer optimizer) { }

    /// <summary>Clips gradients as the trainer's flags ask; override to clip differently.</summary>
    public virtual void ConfigureGradientClipping(optim.Optimizer optimizer, double? clipVal, GradientClipAlgorithm algorithm)
    {
        if (clipVal is { } value) ClipGradients(optimizer, value, algorithm);
    }

    /// <summary>
    /// Steps <paramref name="optimizer"/> (Lightning's <c>optimizer_step</c>); <paramref name="closure"/> runs the training
    /// step and backward pass and must be passed on to <see cref="LightningOptimizer.Step"/>, which runs it, the
    /// before-optimizer-step hooks and gradient clipping, then the step (skipped, with loss scaling, on overflow).
    /// </summary>
    public virtual void OptimizerStep(int epoch, int batchIdx, LightningOptimizer optimizer, Func<Tensor?> closure)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        optimizer.Step(closure);
    }

    /// <summary>Steps a learning-rate scheduler; <paramref name="metric"/> is the monitored value for plateau schedulers.</summary>
    public virtual void LrSchedulerStep(optim.lr_scheduler.LRScheduler scheduler, double? metric)
    {
        if (metric is { } value) scheduler.step(value, null);
        else scheduler.step();
    }

    /// <summary>
    /// Clips the gradients of the parameters <paramref name="optimizer"/> updates, by norm or by value, through the
    /// trainer's precision plugin, which unscales them first under loss scaling.
    /// </summary>
    public void ClipGradients(optim.Optimizer optimizer, double clipVal, GradientClipAlgorithm algorithm = GradientClipAlgorithm.Norm)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        if (Trainer is { } trainer) trainer.Strategy.ClipGradients(optimizer, clipVal, algorithm);
        else PrecisionPlugin.Clip(optimizer, clipVal, algorithm);
    }

    /// <summary>The optimizers, wrapped for manual optimization (their <c>Step</c> counts global steps).</summary>
    public IReadOnlyList<LightningOptimizer> Optimizers() => RequireTrainer(nameof(Optimizers)).LightningOptimizers;

    /// <summary>The learning-rate schedulers, for manual optimization (step them yourself).</summary>
    public IReadOnlyList<optim.lr_scheduler.LRScheduler> LrSchedulers() =>
        RequireTrainer(nameof(LrSchedulers)).LrSchedulerConfigs.Select(c => c.Scheduler).ToList();

    /// <summary>Backward pass for manual optimization, with the backward hooks around it.</summary>
    public void ManualBackward(Tensor loss)
    {
        ArgumentNullException.ThrowIfNull(loss);
        if (AutomaticOptimization)
            throw new InvalidOperationException("ManualBackward is for manual optimization; set AutomaticOptimization = false first.");
        BackwardPass.Run(RequireTrainer(nameof(ManualBackward)), this, loss);
    }

    /// <summary>
    /// Makes only the parameters of <paramref name="optimizer"/> require gradients, so a multi-optimizer step (a GAN)
    /// leaves the others alone; <see cref="UntoggleOptimizer"/> restores them.
    /// </summary>
    public void ToggleOptimizer(LightningOptimizer optimizer)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        var mine = new HashSet<IntPtr>(optimizer.Optimizer.parameters().Select(p => p.Handle));
        _toggledRequiresGrad = parameters().ToDictionary(p => p.Handle, p => p.requires_grad);
        foreach (var p in parameters())
            if (!mine.Contains(p.Handle)) p.requires_grad = false;
    }

    /// <summary>Restores the <c>requires_grad</c> flags that <see cref="ToggleOptimizer"/> changed.</summary>
    public void UntoggleOptimizer(LightningOptimizer optimizer)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        foreach (var p in parameters())
            if (_toggledRequiresGrad.TryGetValue(p.Handle, out var flag)) p.requires_grad = flag;
        _toggledRequiresGrad = new();
    }

    /// <summary>Called when a run fails, after the callbacks' <c>OnException</c> and before the exception propagates.</summary>
    public virtual void OnException(Exception exception) { }

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

    private Trainer RequireTrainer(string member) => Trainer ?? throw new InvalidOperationException(
        $"{member} is available while a Trainer runs this module; call it from a step or hook.");

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

    /// <summary>Evaluates one validation batch, usually logging metrics; runs in eval mode without gradients.</summary>
    public virtual void ValidationStep(TBatch batch, int batchIdx) =>
        throw new NotImplementedException($"{GetType().Name} has no ValidationStep; override it to validate.");

    /// <summary>Evaluates one test batch, usually logging metrics; runs in eval mode without gradients.</summary>
    public virtual void TestStep(TBatch batch, int batchIdx) =>
        throw new NotImplementedException($"{GetType().Name} has no TestStep; override it to test.");

    /// <summary>Predicts one batch; runs in eval mode without gradients. The trainer keeps the returned tensor.</summary>
    public virtual Tensor PredictStep(TBatch batch, int batchIdx) =>
        throw new NotImplementedException($"{GetType().Name} has no PredictStep; override it to predict.");

    /// <summary>True when this module's type overrides <see cref="ValidationStep"/>; without one, fitting skips validation, as Lightning does.</summary>
    internal bool OverridesValidationStep =>
        GetType().GetMethod(nameof(ValidationStep), BindingFlags.Public | BindingFlags.Instance, [typeof(TBatch), typeof(int)])?.DeclaringType
            != typeof(LightningModule<TBatch>);

    /// <summary>Called before each training batch; return false to skip the rest of the epoch (Lightning's -1).</summary>
    public virtual bool OnTrainBatchStart(TBatch batch, int batchIdx) => true;
    /// <summary>Called after each training batch with its loss (null when the step was skipped).</summary>
    public virtual void OnTrainBatchEnd(double? loss, TBatch batch, int batchIdx) { }
    /// <summary>Called before each validation batch.</summary>
    public virtual void OnValidationBatchStart(TBatch batch, int batchIdx) { }
    /// <summary>Called after each validation batch.</summary>
    public virtual void OnValidationBatchEnd(TBatch batch, int batchIdx) { }
    /// <summary>Called before each test batch.</summary>
    public virtual void OnTestBatchStart(TBatch batch, int batchIdx) { }
    /// <summary>Called after each test batch.</summary>
    public virtual void OnTestBatchEnd(TBatch batch, int batchIdx) { }
    /// <summary>Called before each prediction batch.</summary>
    public virtual void OnPredictBatchStart(TBatch batch, int batchIdx) { }
    /// <summary>Called after each prediction batch.</summary>
    public virtual void OnPredictBatchEnd(Tensor prediction, TBatch batch, int batchIdx) { }
}
