using Lightning.Callbacks;
using Lightning.Checkpoints;
using static Lightning.Loops.HookContext;
using static TorchSharp.torch;

namespace Lightning.Loops;

/// <summary>
/// The hook table: every hook the loops, the trainer and the checkpoint connector run, with the callback method, the
/// module method and the logging context of each (Lightning's <c>fx_validator</c>: step hooks log per step by default,
/// epoch hooks per epoch only, the others not at all). Hooks that take a batch are in <see cref="Hooks{TBatch}"/>.
/// <c>OnException</c> is not here: the trainer's exception funnel runs it, each handler on its own.
/// </summary>
internal static class Hooks
{
    public static readonly Hook<Stage> Setup = new("setup", None, (c, t, m, stage) => c.Setup(t, m, stage), (m, stage) => m.Setup(stage));
    public static readonly Hook<Stage> Teardown = new("teardown", None, (c, t, m, stage) => c.Teardown(t, m, stage), (m, stage) => m.Teardown(stage));
    public static readonly Hook<ValueTuple> OnFitStart = new("on_fit_start", None, (c, t, m, _) => c.OnFitStart(t, m), (m, _) => m.OnFitStart());
    public static readonly Hook<ValueTuple> OnFitEnd = new("on_fit_end", None, (c, t, m, _) => c.OnFitEnd(t, m), (m, _) => m.OnFitEnd());
    public static readonly Hook<ValueTuple> OnSanityCheckStart = new("on_sanity_check_start", None, (c, t, m, _) => c.OnSanityCheckStart(t, m), null);
    public static readonly Hook<ValueTuple> OnSanityCheckEnd = new("on_sanity_check_end", None, (c, t, m, _) => c.OnSanityCheckEnd(t, m), null);

    public static readonly Hook<ValueTuple> OnTrainStart = new("on_train_start", TrainingEpoch, (c, t, m, _) => c.OnTrainStart(t, m), (m, _) => m.OnTrainStart());
    public static readonly Hook<ValueTuple> OnTrainEnd = new("on_train_end", None, (c, t, m, _) => c.OnTrainEnd(t, m), (m, _) => m.OnTrainEnd());
    public static readonly Hook<ValueTuple> OnTrainEpochStart = new("on_train_epoch_start", TrainingEpoch, (c, t, m, _) => c.OnTrainEpochStart(t, m), (m, _) => m.OnTrainEpochStart());
    public static readonly Hook<ValueTuple> OnTrainEpochEnd = new("on_train_epoch_end", TrainingEpoch, (c, t, m, _) => c.OnTrainEpochEnd(t, m), (m, _) => m.OnTrainEpochEnd(), monitorsLast: true);

    public static readonly Hook<optim.Optimizer> OnBeforeZeroGrad = new("on_before_zero_grad", TrainingStep, (c, t, m, o) => c.OnBeforeZeroGrad(t, m, o), (m, o) => m.OnBeforeZeroGrad(o));
    public static readonly Hook<(int Epoch, int BatchIdx, optim.Optimizer Optimizer)> OptimizerZeroGrad =
        new("optimizer_zero_grad", TrainingStep, null, (m, a) => m.OptimizerZeroGrad(a.Epoch, a.BatchIdx, a.Optimizer));
    public static readonly Hook<Tensor> OnBeforeBackward = new("on_before_backward", TrainingStep, (c, t, m, loss) => c.OnBeforeBackward(t, m, loss), (m, loss) => m.OnBeforeBackward(loss));
    public static readonly Hook<Tensor, ValueTuple> Backward = new("backward", TrainingStep, null, (t, m, loss) =>
    {
        t.Strategy.Backward(loss, m);
        return default;
    });
    public static readonly Hook<ValueTuple> OnAfterBackward = new("on_after_backward", TrainingStep, (c, t, m, _) => c.OnAfterBackward(t, m), (m, _) => m.OnAfterBackward());
    public static readonly Hook<optim.Optimizer> OnBeforeOptimizerStep = new("on_before_optimizer_step", TrainingStep, (c, t, m, o) => c.OnBeforeOptimizerStep(t, m, o), (m, o) => m.OnBeforeOptimizerStep(o));
    public static readonly Hook<(optim.Optimizer Optimizer, double? ClipVal, GradientClipAlgorithm Algorithm)> ConfigureGradientClipping =
        new("configure_gradient_clipping", TrainingStep, null, (m, a) => m.ConfigureGradientClipping(a.Optimizer, a.ClipVal, a.Algorithm));
    public static readonly Hook<(int Epoch, int BatchIdx, LightningOptimizer Optimizer, Func<Tensor?> Closure)> OptimizerStep =
        new("optimizer_step", TrainingStep, null, (m, a) => m.OptimizerStep(a.Epoch, a.BatchIdx, a.Optimizer, a.Closure));
    public static readonly Hook<(optim.lr_scheduler.LRScheduler Scheduler, double? Metric)> LrSchedulerStep =
        new("lr_scheduler_step", None, null, (m, a) => m.LrSchedulerStep(a.Scheduler, a.Metric));

    public static readonly Hook<ValueTuple> OnValidationModelEval = new("on_validation_model_eval", None, null, (m, _) => m.OnValidationModelEval());
    public static readonly Hook<ValueTuple> OnValidationModelTrain = new("on_validation_model_train", None, null, (m, _) => m.OnValidationModelTrain());
    public static readonly Hook<ValueTuple> OnValidationStart = new("on_validation_start", EvaluationEpoch, (c, t, m, _) => c.OnValidationStart(t, m), (m, _) => m.OnValidationStart());
    public static readonly Hook<ValueTuple> OnValidationEpochStart = new("on_validation_epoch_start", EvaluationEpoch, (c, t, m, _) => c.OnValidationEpochStart(t, m), (m, _) => m.OnValidationEpochStart());
    public static readonly Hook<ValueTuple> OnValidationEpochEnd = new("on_validation_epoch_end", EvaluationEpoch, (c, t, m, _) => c.OnValidationEpochEnd(t, m), (m, _) => m.OnValidationEpochEnd());
    public static readonly Hook<ValueTuple> OnValidationEnd = new("on_validation_end", None, (c, t, m, _) => c.OnValidationEnd(t, m), (m, _) => m.OnValidationEnd());

    public static readonly Hook<ValueTuple> OnTestModelEval = new("on_test_model_eval", None, null, (m, _) => m.OnTestModelEval());
    public static readonly Hook<ValueTuple> OnTestModelTrain = new("on_test_model_train", None, null, (m, _) => m.OnTestModelTrain());
    public static readonly Hook<ValueTuple> OnTestStart = new("on_test_start", EvaluationEpoch, (c, t, m, _) => c.OnTestStart(t, m), (m, _) => m.OnTestStart());
    public static readonly Hook<ValueTuple> OnTestEpochStart = new("on_test_epoch_start", EvaluationEpoch, (c, t, m, _) => c.OnTestEpochStart(t, m), (m, _) => m.OnTestEpochStart());
    public static readonly Hook<ValueTuple> OnTestEpochEnd = new("on_test_epoch_end", EvaluationEpoch, (c, t, m, _) => c.OnTestEpochEnd(t, m), (m, _) => m.OnTestEpochEnd());
    public static readonly Hook<ValueTuple> OnTestEnd = new("on_test_end", None, (c, t, m, _) => c.OnTestEnd(t, m), (m, _) => m.OnTestEnd());

    public static readonly Hook<ValueTuple> OnPredictModelEval = new("on_predict_model_eval", None, null, (m, _) => m.OnPredictModelEval());
    public static readonly Hook<ValueTuple> OnPredictStart = new("on_predict_start", None, (c, t, m, _) => c.OnPredictStart(t, m), (m, _) => m.OnPredictStart());
    public static readonly Hook<ValueTuple> OnPredictEpochStart = new("on_predict_epoch_start", None, (c, t, m, _) => c.OnPredictEpochStart(t, m), (m, _) => m.OnPredictEpochStart());
    public static readonly Hook<IReadOnlyList<Tensor>> OnPredictEpochEnd = new("on_predict_epoch_end", None, (c, t, m, p) => c.OnPredictEpochEnd(t, m, p), (m, _) => m.OnPredictEpochEnd());
    public static readonly Hook<ValueTuple> OnPredictEnd = new("on_predict_end", None, (c, t, m, _) => c.OnPredictEnd(t, m), (m, _) => m.OnPredictEnd());

    // A checkpoint's hooks come in two rows, because the module's runs first and the callbacks' later, each with its state.
    public static readonly Hook<Checkpoint> OnSaveCheckpointModule = new("on_save_checkpoint", None, null, (m, checkpoint) => m.OnSaveCheckpoint(checkpoint));
    public static readonly Hook<Checkpoint> OnSaveCheckpointCallbacks = new("on_save_checkpoint", None, (c, t, m, checkpoint) =>
    {
        c.OnSaveCheckpoint(t, m, checkpoint);
        if (c.SaveState() is { } state) checkpoint.Callbacks[c.StateKey] = state;
    }, null);
    public static readonly Hook<Checkpoint> OnLoadCheckpointModule = new("on_load_checkpoint", None, null, (m, checkpoint) => m.OnLoadCheckpoint(checkpoint));
    public static readonly Hook<Checkpoint> OnLoadCheckpointCallbacks = new("on_load_checkpoint", None, (c, t, m, checkpoint) =>
    {
        c.OnLoadCheckpoint(t, m, checkpoint);
        if (checkpoint.Callbacks[c.StateKey] is System.Text.Json.Nodes.JsonObject saved) c.LoadState(saved);
    }, null);
}

/// <summary>The rows of the hook table that take a batch of type <typeparamref name="TBatch"/>, and the steps the strategy runs.</summary>
internal static class Hooks<TBatch>
{
    public static readonly Hook<(TBatch Batch, int BatchIdx), bool> OnTrainBatchStart = new("on_train_batch_start", HookContext.TrainingStep,
        (c, t, m, a) => c.OnTrainBatchStart(t, m, a.Batch, a.BatchIdx), (_, m, a) => Typed(m).OnTrainBatchStart(a.Batch, a.BatchIdx));
    public static readonly Hook<(TBatch Batch, int BatchIdx), Tensor?> TrainingStep = new("training_step", HookContext.TrainingStep, null,
        (t, m, a) => t.Strategy.TrainingStep(Typed(m), a.Batch, a.BatchIdx));
    public static readonly Hook<(double? Loss, TBatch Batch, int BatchIdx)> OnTrainBatchEnd = new("on_train_batch_end", HookContext.TrainingStep,
        (c, t, m, a) => c.OnTrainBatchEnd(t, m, a.Loss, a.Batch, a.BatchIdx), (m, a) => Typed(m).OnTrainBatchEnd(a.Loss, a.Batch, a.BatchIdx));

    /// <summary>The validation rows.</summary>
    public static readonly EvaluationHooks<TBatch> Validation = new(
        nameof(TrainerOptions.LimitValBatches), limits => limits.Val,
        Hooks.OnValidationModelEval, Hooks.OnValidationStart, Hooks.OnValidationEpochStart,
        new("on_validation_batch_start", EvaluationStep, (c, t, m, a) => c.OnValidationBatchStart(t, m, a.Batch, a.BatchIdx), (m, a) => Typed(m).OnValidationBatchStart(a.Batch, a.BatchIdx)),
        new("validation_step", EvaluationStep, null, (t, m, a) =>
        {
            t.Strategy.ValidationStep(Typed(m), a.Batch, a.BatchIdx);
            return default;
        }),
        new("on_validation_batch_end", EvaluationStep, (c, t, m, a) => c.OnValidationBatchEnd(t, m, a.Batch, a.BatchIdx), (m, a) => Typed(m).OnValidationBatchEnd(a.Batch, a.BatchIdx)),
        Hooks.OnValidationEpochEnd, Hooks.OnValidationEnd, Hooks.OnValidationModelTrain);

    /// <summary>The test rows.</summary>
    public static readonly EvaluationHooks<TBatch> Test = new(
        nameof(TrainerOptions.LimitTestBatches), limits => limits.Test,
        Hooks.OnTestModelEval, Hooks.OnTestStart, Hooks.OnTestEpochStart,
        new("on_test_batch_start", EvaluationStep, (c, t, m, a) => c.OnTestBatchStart(t, m, a.Batch, a.BatchIdx), (m, a) => Typed(m).OnTestBatchStart(a.Batch, a.BatchIdx)),
        new("test_step", EvaluationStep, null, (t, m, a) =>
        {
            t.Strategy.TestStep(Typed(m), a.Batch, a.BatchIdx);
            return default;
        }),
        new("on_test_batch_end", EvaluationStep, (c, t, m, a) => c.OnTestBatchEnd(t, m, a.Batch, a.BatchIdx), (m, a) => Typed(m).OnTestBatchEnd(a.Batch, a.BatchIdx)),
        Hooks.OnTestEpochEnd, Hooks.OnTestEnd, Hooks.OnTestModelTrain);

    public static readonly Hook<(TBatch Batch, int BatchIdx)> OnPredictBatchStart = new("on_predict_batch_start", None,
        (c, t, m, a) => c.OnPredictBatchStart(t, m, a.Batch, a.BatchIdx), (m, a) => Typed(m).OnPredictBatchStart(a.Batch, a.BatchIdx));
    public static readonly Hook<(TBatch Batch, int BatchIdx), Tensor> PredictStep = new("predict_step", None, null,
        (t, m, a) => t.Strategy.PredictStep(Typed(m), a.Batch, a.BatchIdx));
    public static readonly Hook<(Tensor Prediction, TBatch Batch, int BatchIdx)> OnPredictBatchEnd = new("on_predict_batch_end", None,
        (c, t, m, a) => c.OnPredictBatchEnd(t, m, a.Prediction, a.Batch, a.BatchIdx), (m, a) => Typed(m).OnPredictBatchEnd(a.Prediction, a.Batch, a.BatchIdx));

    private static LightningModule<TBatch> Typed(LightningModule module) => (LightningModule<TBatch>)module;
}
