namespace Lightning.Precision;

/// <summary>What became of one optimizer step (<see cref="PrecisionPlugin.OptimizerStep"/>).</summary>
public enum OptimizerStepOutcome
{
    /// <summary>The optimizer stepped.</summary>
    Stepped,
    /// <summary>Loss scaling found inf or NaN gradients and skipped the update; as in Lightning, it still counts as a step.</summary>
    SkippedOnOverflow,
    /// <summary>The closure returned no loss: no backward pass, no update, nothing counted.</summary>
    NoLoss,
}
