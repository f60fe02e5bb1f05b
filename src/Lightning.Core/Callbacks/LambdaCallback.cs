using Lightning.Checkpoints;
using static TorchSharp.torch;

namespace Lightning.Callbacks;

/// <summary>
/// A callback made on the spot from delegates, as Lightning's <c>LambdaCallback</c>: pass the hooks you need by name
/// and each runs when its hook does, with the hook's arguments. Hooks left out do nothing.
/// </summary>
/// <example><code>
/// var epochs = new List&lt;int&gt;();
/// var trainer = new Trainer(new TrainerOptions
/// {
///     Callbacks = [new LambdaCallback(onTrainEpochStart: (trainer, module) =&gt; epochs.Add(trainer.CurrentEpoch))],
/// });
/// </code></example>
public sealed class LambdaCallback : Callback
{
    private readonly Action<Trainer, LightningModule, Stage>? _setup;
    private readonly Action<Trainer, LightningModule, Stage>? _teardown;
    private readonly Action<Trainer, LightningModule>? _onFitStart;
    private readonly Action<Trainer, LightningModule>? _onFitEnd;
    private readonly Action<Trainer, LightningModule>? _onSanityCheckStart;
    private readonly Action<Trainer, LightningModule>? _onSanityCheckEnd;
    private readonly Action<Trainer, LightningModule>? _onTrainStart;
    private readonly Action<Trainer, LightningModule>? _onTrainEnd;
    private readonly Action<Trainer, LightningModule>? _onTrainEpochStart;
    private readonly Action<Trainer, LightningModule>? _onTrainEpochEnd;
    private readonly Action<Trainer, LightningModule, object?, int>? _onTrainBatchStart;
    private readonly Action<Trainer, LightningModule, double?, object?, int>? _onTrainBatchEnd;
    private readonly Action<Trainer, LightningModule>? _onValidationStart;
    private readonly Action<Trainer, LightningModule>? _onValidationEnd;
    private readonly Action<Trainer, LightningModule>? _onValidationEpochStart;
    private readonly Action<Trainer, LightningModule>? _onValidationEpochEnd;
    private readonly Action<Trainer, LightningModule, object?, int>? _onValidationBatchStart;
    private readonly Action<Trainer, LightningModule, object?, int>? _onValidationBatchEnd;
    private readonly Action<Trainer, LightningModule>? _onTestStart;
    private readonly Action<Trainer, LightningModule>? _onTestEnd;
    private readonly Action<Trainer, LightningModule>? _onTestEpochStart;
    private readonly Action<Trainer, LightningModule>? _onTestEpochEnd;
    private readonly Action<Trainer, LightningModule, object?, int>? _onTestBatchStart;
    private readonly Action<Trainer, LightningModule, object?, int>? _onTestBatchEnd;
    private readonly Action<Trainer, LightningModule>? _onPredictStart;
    private readonly Action<Trainer, LightningModule>? _onPredictEnd;
    private readonly Action<Trainer, LightningModule>? _onPredictEpochStart;
    private readonly Action<Trainer, LightningModule, IReadOnlyList<Tensor>>? _onPredictEpochEnd;
    private readonly Action<Trainer, LightningModule, object?, int>? _onPredictBatchStart;
    private readonly Action<Trainer, LightningModule, Tensor, object?, int>? _onPredictBatchEnd;
    private readonly Action<Trainer, LightningModule, optim.Optimizer>? _onBeforeZeroGrad;
    private readonly Action<Trainer, LightningModule, Tensor>? _onBeforeBackward;
    private readonly Action<Trainer, LightningModule>? _onAfterBackward;
    private readonly Action<Trainer, LightningModule, optim.Optimizer>? _onBeforeOptimizerStep;
    private readonly Action<Trainer, LightningModule, Exception>? _onException;
    private readonly Action<Trainer, LightningModule, Checkpoint>? _onSaveCheckpoint;
    private readonly Action<Trainer, LightningModule, Checkpoint>? _onLoadCheckpoint;

    /// <summary>A callback running the given delegates; each parameter is the hook of the same name on <see cref="Callback"/>.</summary>
    /// <param name="setup">Runs at <see cref="Callback.Setup"/>.</param>
    /// <param name="teardown">Runs at <see cref="Callback.Teardown"/>.</param>
    /// <param name="onFitStart">Runs at <see cref="Callback.OnFitStart"/>.</param>
    /// <param name="onFitEnd">Runs at <see cref="Callback.OnFitEnd"/>.</param>
    /// <param name="onSanityCheckStart">Runs at <see cref="Callback.OnSanityCheckStart"/>.</param>
    /// <param name="onSanityCheckEnd">Runs at <see cref="Callback.OnSanityCheckEnd"/>.</param>
    /// <param name="onTrainStart">Runs at <see cref="Callback.OnTrainStart"/>.</param>
    /// <param name="onTrainEnd">Runs at <see cref="Callback.OnTrainEnd"/>.</param>
    /// <param name="onTrainEpochStart">Runs at <see cref="Callback.OnTrainEpochStart"/>.</param>
    /// <param name="onTrainEpochEnd">Runs at <see cref="Callback.OnTrainEpochEnd"/>.</param>
    /// <param name="onTrainBatchStart">Runs at <see cref="Callback.OnTrainBatchStart"/> with the batch and its index.</param>
    /// <param name="onTrainBatchEnd">Runs at <see cref="Callback.OnTrainBatchEnd"/> with the loss, the batch and its index.</param>
    /// <param name="onValidationStart">Runs at <see cref="Callback.OnValidationStart"/>.</param>
    /// <param name="onValidationEnd">Runs at <see cref="Callback.OnValidationEnd"/>.</param>
    /// <param name="onValidationEpochStart">Runs at <see cref="Callback.OnValidationEpochStart"/>.</param>
    /// <param name="onValidationEpochEnd">Runs at <see cref="Callback.OnValidationEpochEnd"/>.</param>
    /// <param name="onValidationBatchStart">Runs at <see cref="Callback.OnValidationBatchStart"/> with the batch and its index.</param>
    /// <param name="onValidationBatchEnd">Runs at <see cref="Callback.OnValidationBatchEnd"/> with the batch and its index.</param>
    /// <param name="onTestStart">Runs at <see cref="Callback.OnTestStart"/>.</param>
    /// <param name="onTestEnd">Runs at <see cref="Callback.OnTestEnd"/>.</param>
    /// <param name="onTestEpochStart">Runs at <see cref="Callback.OnTestEpochStart"/>.</param>
    /// <param name="onTestEpochEnd">Runs at <see cref="Callback.OnTestEpochEnd"/>.</param>
    /// <param name="onTestBatchStart">Runs at <see cref="Callback.OnTestBatchStart"/> with the batch and its index.</param>
    /// <param name="onTestBatchEnd">Runs at <see cref="Callback.OnTestBatchEnd"/> with the batch and its index.</param>
    /// <param name="onPredictStart">Runs at <see cref="Callback.OnPredictStart"/>.</param>
    /// <param name="onPredictEnd">Runs at <see cref="Callback.OnPredictEnd"/>.</param>
    /// <param name="onPredictEpochStart">Runs at <see cref="Callback.OnPredictEpochStart"/>.</param>
    /// <param name="onPredictEpochEnd">Runs at <see cref="Callback.OnPredictEpochEnd"/> with every prediction of the epoch.</param>
    /// <param name="onPredictBatchStart">Runs at <see cref="Callback.OnPredictBatchStart"/> with the batch and its index.</param>
    /// <param name="onPredictBatchEnd">Runs at <see cref="Callback.OnPredictBatchEnd"/> with the prediction, the batch and its index.</param>
    /// <param name="onBeforeZeroGrad">Runs at <see cref="Callback.OnBeforeZeroGrad"/> with the optimizer.</param>
    /// <param name="onBeforeBackward">Runs at <see cref="Callback.OnBeforeBackward"/> with the loss.</param>
    /// <param name="onAfterBackward">Runs at <see cref="Callback.OnAfterBackward"/>.</param>
    /// <param name="onBeforeOptimizerStep">Runs at <see cref="Callback.OnBeforeOptimizerStep"/> with the optimizer.</param>
    /// <param name="onException">Runs at <see cref="Callback.OnException"/> with the exception.</param>
    /// <param name="onSaveCheckpoint">Runs at <see cref="Callback.OnSaveCheckpoint"/> with the checkpoint.</param>
    /// <param name="onLoadCheckpoint">Runs at <see cref="Callback.OnLoadCheckpoint"/> with the checkpoint.</param>
    public LambdaCallback(
        Action<Trainer, LightningModule, Stage>? setup = null,
        Action<Trainer, LightningModule, Stage>? teardown = null,
        Action<Trainer, LightningModule>? onFitStart = null,
        Action<Trainer, LightningModule>? onFitEnd = null,
        Action<Trainer, LightningModule>? onSanityCheckStart = null,
        Action<Trainer, LightningModule>? onSanityCheckEnd = null,
        Action<Trainer, LightningModule>? onTrainStart = null,
        Action<Trainer, LightningModule>? onTrainEnd = null,
        Action<Trainer, LightningModule>? onTrainEpochStart = null,
        Action<Trainer, LightningModule>? onTrainEpochEnd = null,
        Action<Trainer, LightningModule, object?, int>? onTrainBatchStart = null,
        Action<Trainer, LightningModule, double?, object?, int>? onTrainBatchEnd = null,
        Action<Trainer, LightningModule>? onValidationStart = null,
        Action<Trainer, LightningModule>? onValidationEnd = null,
        Action<Trainer, LightningModule>? onValidationEpochStart = null,
        Action<Trainer, LightningModule>? onValidationEpochEnd = null,
        Action<Trainer, LightningModule, object?, int>? onValidationBatchStart = null,
        Action<Trainer, LightningModule, object?, int>? onValidationBatchEnd = null,
        Action<Trainer, LightningModule>? onTestStart = null,
        Action<Trainer, LightningModule>? onTestEnd = null,
        Action<Trainer, LightningModule>? onTestEpochStart = null,
        Action<Trainer, LightningModule>? onTestEpochEnd = null,
        Action<Trainer, LightningModule, object?, int>? onTestBatchStart = null,
        Action<Trainer, LightningModule, object?, int>? onTestBatchEnd = null,
        Action<Trainer, LightningModule>? onPredictStart = null,
        Action<Trainer, LightningModule>? onPredictEnd = null,
        Action<Trainer, LightningModule>? onPredictEpochStart = null,
        Action<Trainer, LightningModule, IReadOnlyList<Tensor>>? onPredictEpochEnd = null,
        Action<Trainer, LightningModule, object?, int>? onPredictBatchStart = null,
        Action<Trainer, LightningModule, Tensor, object?, int>? onPredictBatchEnd = null,
        Action<Trainer, LightningModule, optim.Optimizer>? onBeforeZeroGrad = null,
        Action<Trainer, LightningModule, Tensor>? onBeforeBackward = null,
        Action<Trainer, LightningModule>? onAfterBackward = null,
        Action<Trainer, LightningModule, optim.Optimizer>? onBeforeOptimizerStep = null,
        Action<Trainer, LightningModule, Exception>? onException = null,
        Action<Trainer, LightningModule, Checkpoint>? onSaveCheckpoint = null,
        Action<Trainer, LightningModule, Checkpoint>? onLoadCheckpoint = null)
    {
        _setup = setup;
        _teardown = teardown;
        _onFitStart = onFitStart;
        _onFitEnd = onFitEnd;
        _onSanityCheckStart = onSanityCheckStart;
        _onSanityCheckEnd = onSanityCheckEnd;
        _onTrainStart = onTrainStart;
        _onTrainEnd = onTrainEnd;
        _onTrainEpochStart = onTrainEpochStart;
        _onTrainEpochEnd = onTrainEpochEnd;
        _onTrainBatchStart = onTrainBatchStart;
        _onTrainBatchEnd = onTrainBatchEnd;
        _onValidationStart = onValidationStart;
        _onValidationEnd = onValidationEnd;
        _onValidationEpochStart = onValidationEpochStart;
        _onValidationEpochEnd = onValidationEpochEnd;
        _onValidationBatchStart = onValidationBatchStart;
        _onValidationBatchEnd = onValidationBatchEnd;
        _onTestStart = onTestStart;
        _onTestEnd = onTestEnd;
        _onTestEpochStart = onTestEpochStart;
        _onTestEpochEnd = onTestEpochEnd;
        _onTestBatchStart = onTestBatchStart;
        _onTestBatchEnd = onTestBatchEnd;
        _onPredictStart = onPredictStart;
        _onPredictEnd = onPredictEnd;
        _onPredictEpochStart = onPredictEpochStart;
        _onPredictEpochEnd = onPredictEpochEnd;
        _onPredictBatchStart = onPredictBatchStart;
        _onPredictBatchEnd = onPredictBatchEnd;
        _onBeforeZeroGrad = onBeforeZeroGrad;
        _onBeforeBackward = onBeforeBackward;
        _onAfterBackward = onAfterBackward;
        _onBeforeOptimizerStep = onBeforeOptimizerStep;
        _onException = onException;
        _onSaveCheckpoint = onSaveCheckpoint;
        _onLoadCheckpoint = onLoadCheckpoint;
    }

    /// <inheritdoc />
    public override void Setup(Trainer trainer, LightningModule module, Stage stage) => _setup?.Invoke(trainer, module, stage);

    /// <inheritdoc />
    public override void Teardown(Trainer trainer, LightningModule module, Stage stage) => _teardown?.Invoke(trainer, module, stage);

    /// <inheritdoc />
    public override void OnFitStart(Trainer trainer, LightningModule module) => _onFitStart?.Invoke(trainer, module);

    /// <inheritdoc />
    public override void OnFitEnd(Trainer trainer, LightningModule module) => _onFitEnd?.Invoke(trainer, module);

    /// <inheritdoc />
    public override void OnSanityCheckStart(Trainer trainer, LightningModule module) => _onSanityCheckStart?.Invoke(trainer, module);

    /// <inheritdoc />
    public override void OnSanityCheckEnd(Trainer trainer, LightningModule module) => _onSanityCheckEnd?.Invoke(trainer, module);

    /// <inheritdoc />
    public override void OnTrainStart(Trainer trainer, LightningModule module) => _onTrainStart?.Invoke(trainer, module);

    /// <inheritdoc />
    public override void OnTrainEnd(Trainer trainer, LightningModule module) => _onTrainEnd?.Invoke(trainer, module);

    /// <inheritdoc />
    public override void OnTrainEpochStart(Trainer trainer, LightningModule module) => _onTrainEpochStart?.Invoke(trainer, module);

    /// <inheritdoc />
    public override void OnTrainEpochEnd(Trainer trainer, LightningModule module) => _onTrainEpochEnd?.Invoke(trainer, module);

    /// <inheritdoc />
    public override void OnTrainBatchStart(Trainer trainer, LightningModule module, object? batch, int batchIdx) =>
        _onTrainBatchStart?.Invoke(trainer, module, batch, batchIdx);

    /// <inheritdoc />
    public override void OnTrainBatchEnd(Trainer trainer, LightningModule module, double? loss, object? batch, int batchIdx) =>
        _onTrainBatchEnd?.Invoke(trainer, module, loss, batch, batchIdx);

    /// <inheritdoc />
    public override void OnValidationStart(Trainer trainer, LightningModule module) => _onValidationStart?.Invoke(trainer, module);

    /// <inheritdoc />
    public override void OnValidationEnd(Trainer trainer, LightningModule module) => _onValidationEnd?.Invoke(trainer, module);

    /// <inheritdoc />
    public override void OnValidationEpochStart(Trainer trainer, LightningModule module) => _onValidationEpochStart?.Invoke(trainer, module);

    /// <inheritdoc />
    public override void OnValidationEpochEnd(Trainer trainer, LightningModule module) => _onValidationEpochEnd?.Invoke(trainer, module);

    /// <inheritdoc />
    public override void OnValidationBatchStart(Trainer trainer, LightningModule module, object? batch, int batchIdx) =>
        _onValidationBatchStart?.Invoke(trainer, module, batch, batchIdx);

    /// <inheritdoc />
    public override void OnValidationBatchEnd(Trainer trainer, LightningModule module, object? batch, int batchIdx) =>
        _onValidationBatchEnd?.Invoke(trainer, module, batch, batchIdx);

    /// <inheritdoc />
    public override void OnTestStart(Trainer trainer, LightningModule module) => _onTestStart?.Invoke(trainer, module);

    /// <inheritdoc />
    public override void OnTestEnd(Trainer trainer, LightningModule module) => _onTestEnd?.Invoke(trainer, module);

    /// <inheritdoc />
    public override void OnTestEpochStart(Trainer trainer, LightningModule module) => _onTestEpochStart?.Invoke(trainer, module);

    /// <inheritdoc />
    public override void OnTestEpochEnd(Trainer trainer, LightningModule module) => _onTestEpochEnd?.Invoke(trainer, module);

    /// <inheritdoc />
    public override void OnTestBatchStart(Trainer trainer, LightningModule module, object? batch, int batchIdx) =>
        _onTestBatchStart?.Invoke(trainer, module, batch, batchIdx);

    /// <inheritdoc />
    public override void OnTestBatchEnd(Trainer trainer, LightningModule module, object? batch, int batchIdx) =>
        _onTestBatchEnd?.Invoke(trainer, module, batch, batchIdx);

    /// <inheritdoc />
    public override void OnPredictStart(Trainer trainer, LightningModule module) => _onPredictStart?.Invoke(trainer, module);

    /// <inheritdoc />
    public override void OnPredictEnd(Trainer trainer, LightningModule module) => _onPredictEnd?.Invoke(trainer, module);

    /// <inheritdoc />
    public override void OnPredictEpochStart(Trainer trainer, LightningModule module) => _onPredictEpochStart?.Invoke(trainer, module);

    /// <inheritdoc />
    public override void OnPredictEpochEnd(Trainer trainer, LightningModule module, IReadOnlyList<Tensor> predictions) =>
        _onPredictEpochEnd?.Invoke(trainer, module, predictions);

    /// <inheritdoc />
    public override void OnPredictBatchStart(Trainer trainer, LightningModule module, object? batch, int batchIdx) =>
        _onPredictBatchStart?.Invoke(trainer, module, batch, batchIdx);

    /// <inheritdoc />
    public override void OnPredictBatchEnd(Trainer trainer, LightningModule module, Tensor prediction, object? batch, int batchIdx) =>
        _onPredictBatchEnd?.Invoke(trainer, module, prediction, batch, batchIdx);

    /// <inheritdoc />
    public override void OnBeforeZeroGrad(Trainer trainer, LightningModule module, optim.Optimizer optimizer) =>
        _onBeforeZeroGrad?.Invoke(trainer, module, optimizer);

    /// <inheritdoc />
    public override void OnBeforeBackward(Trainer trainer, LightningModule module, Tensor loss) => _onBeforeBackward?.Invoke(trainer, module, loss);

    /// <inheritdoc />
    public override void OnAfterBackward(Trainer trainer, LightningModule module) => _onAfterBackward?.Invoke(trainer, module);

    /// <inheritdoc />
    public override void OnBeforeOptimizerStep(Trainer trainer, LightningModule module, optim.Optimizer optimizer) =>
        _onBeforeOptimizerStep?.Invoke(trainer, module, optimizer);

    /// <inheritdoc />
    public override void OnException(Trainer trainer, LightningModule module, Exception exception) =>
        _onException?.Invoke(trainer, module, exception);

    /// <inheritdoc />
    public override void OnSaveCheckpoint(Trainer trainer, LightningModule module, Checkpoint checkpoint) =>
        _onSaveCheckpoint?.Invoke(trainer, module, checkpoint);

    /// <inheritdoc />
    public override void OnLoadCheckpoint(Trainer trainer, LightningModule module, Checkpoint checkpoint) =>
        _onLoadCheckpoint?.Invoke(trainer, module, checkpoint);
}
