using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Loops.Optimization;

/// <summary>
/// Manual optimization of one batch (Lightning's <c>_ManualOptimization</c>): the training step calls
/// <see cref="LightningModule.ManualBackward"/> and <see cref="LightningOptimizer.Step"/> itself; the loop only runs it.
/// </summary>
internal static class ManualOptimization
{
    /// <summary>Runs the batch's step; returns its loss, or null when the training step returned none.</summary>
    public static double? Run(Func<Tensor?> trainingStep) => trainingStep()?.ToDouble();
}
