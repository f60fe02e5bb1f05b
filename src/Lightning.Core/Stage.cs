namespace Lightning;

/// <summary>What the trainer is running, as Lightning's <c>stage</c> argument of <c>setup</c>/<c>teardown</c>.</summary>
public enum Stage
{
    /// <summary><c>Trainer.Fit</c>.</summary>
    Fit,
    /// <summary><c>Trainer.Validate</c>.</summary>
    Validate,
    /// <summary><c>Trainer.Test</c>.</summary>
    Test,
    /// <summary><c>Trainer.Predict</c>.</summary>
    Predict,
}
