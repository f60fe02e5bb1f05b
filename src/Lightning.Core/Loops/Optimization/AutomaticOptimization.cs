using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Loops.Optimization;

/// <summary>
/// Automatic optimization of one batch (Lightning's <c>_AutomaticOptimization</c>): the closure runs the training step,
/// zeroes the gradients at the start of an accumulation window and runs the backward pass; on the window's last batch
/// the module's <see cref="LightningModule.OptimizerStep"/> hands it to the optimizer, whose step goes through the
/// strategy and its precision plugin.
/// </summary>
internal sealed class AutomaticOptimization(Trainer trainer, LightningModule module, FitLoop fit)
{
    /// <summary>Runs the batch's step; returns its loss, or null when the training step returned none.</summary>
    public double? Run(Func<Tensor?> trainingStep, int batchIdx, bool isLastInEpoch)
    {
        var t = trainer;
        var k = t.AccumulateGradBatches;
        var optimizer = t.LightningOptimizers.Count > 0 ? t.LightningOptimizers[0] : null;
        bool stepping = optimizer is not null && !fit.SkipBackward && ((batchIdx + 1) % k == 0 || isLastInEpoch);
        bool firstOfWindow = batchIdx % k == 0;
        Tensor? loss = null;

        Tensor? Closure()
        {
            loss = trainingStep();
            if (loss is null || optimizer is null || fit.SkipBackward) return loss;
            if (firstOfWindow)
            {
                t.Hooks.Call(Hooks.OnBeforeZeroGrad, module, optimizer.Optimizer);
                t.Hooks.Call(Hooks.OptimizerZeroGrad, module, (t.CurrentEpoch, batchIdx, optimizer.Optimizer));
            }
            // Summed over k batches, each batch's loss counts 1/k so the step matches one large batch.
            BackwardPass.Run(t, module, k > 1 ? loss / k : loss);
            return loss;
        }

        if (stepping) t.Hooks.Call(Hooks.OptimizerStep, module, (t.CurrentEpoch, batchIdx, optimizer!, Closure));
        else Closure();
        return loss?.ToDouble();
    }
}
