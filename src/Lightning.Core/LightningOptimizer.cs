using Lightning.Loops;
using static TorchSharp.torch;

namespace Lightning;

/// <summary>
/// An optimizer as the trainer hands it out (Lightning's <c>LightningOptimizer</c>): to <see cref="LightningModule.OptimizerStep"/>
/// in automatic optimization and by <see cref="LightningModule.Optimizers"/> in manual optimization. Each <see cref="Step"/>
/// goes through the strategy and its precision plugin and counts as a global step.
/// </summary>
public sealed class LightningOptimizer
{
    private readonly Trainer _trainer;

    internal LightningOptimizer(optim.Optimizer optimizer, Trainer trainer) => (Optimizer, _trainer) = (optimizer, trainer);

    /// <summary>The TorchSharp optimizer.</summary>
    public optim.Optimizer Optimizer { get; }

    /// <summary>
    /// Runs <paramref name="closure"/> when given (the training step and backward pass), makes the gradients the same
    /// on every process, runs the before-optimizer-step hooks (and, in automatic optimization, gradient clipping), then
    /// steps the optimizer and counts a global step. Nothing is stepped or counted when the closure returns no loss.
    /// </summary>
    public void Step(Func<Tensor?>? closure = null)
    {
        var module = _trainer.LightningModule ?? throw new InvalidOperationException("Step needs a running trainer: call it from a step or hook.");
        if (_trainer.Strategy.OptimizerStep(Optimizer, closure, () => BeforeStep(module))) _trainer.GlobalStep++;
    }

    /// <summary>Zeroes the gradients of this optimizer's parameters.</summary>
    public void ZeroGrad() => Optimizer.zero_grad();

    private void BeforeStep(LightningModule module)
    {
        var t = _trainer;
        t.Strategy.ReduceGradients(module);
        t.Hooks.Call(Hooks.OnBeforeOptimizerStep, module, Optimizer);
        if (module.AutomaticOptimization)
            t.Hooks.Call(Hooks.ConfigureGradientClipping, module, (Optimizer, t.Options.GradientClipVal, t.Options.GradientClipAlgorithm));
    }
}
