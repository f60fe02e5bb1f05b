namespace Lightning.Loops;

/// <summary>Where a <c>Log</c> call comes from; decides its defaults and whether it is allowed (Lightning's fx validator).</summary>
internal enum HookContext
{
    /// <summary>Outside any loop hook that may log.</summary>
    None,
    /// <summary>The training step and training batch hooks: per step by default, per epoch allowed.</summary>
    TrainingStep,
    /// <summary>Training epoch hooks: per epoch only.</summary>
    TrainingEpoch,
    /// <summary>Validation or test steps and batch hooks: per epoch by default, per step allowed.</summary>
    EvaluationStep,
    /// <summary>Validation or test epoch hooks: per epoch only.</summary>
    EvaluationEpoch,
}
