namespace Lightning.Loops;

/// <summary>
/// The rows of the hook table for one evaluation stage (validation or test), so one <see cref="EvaluationLoop{TBatch}"/>
/// runs either; <c>LimitOption</c> names the option that limits the stage's batches in errors, <c>Limit</c> gives its value in force.
/// </summary>
internal sealed record EvaluationHooks<TBatch>(
    string LimitOption,
    Func<EffectiveLimits, BatchLimit> Limit,
    Hook<ValueTuple> ModelEval,
    Hook<ValueTuple> Start,
    Hook<ValueTuple> EpochStart,
    Hook<(TBatch Batch, int BatchIdx)> BatchStart,
    Hook<(TBatch Batch, int BatchIdx), ValueTuple> Step,
    Hook<(TBatch Batch, int BatchIdx)> BatchEnd,
    Hook<ValueTuple> EpochEnd,
    Hook<ValueTuple> End,
    Hook<ValueTuple> ModelTrain);
