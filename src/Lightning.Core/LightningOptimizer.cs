using Lightning.Loops;
using Lightning.Precision;
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
    /// on every process, runs the before-optimizer-step hooks (and, in automatic optimization, gradient clipping) on
    /// true gradients, then steps the optimizer through the precision plugin and counts a global step. Nothing is
    /// stepped or counted when the closure returns no loss; a step skipped on overflow counts, as in Lightning.
    /// </summary>
    public void Step(Func<Tensor?>? closure = null)
    {
        var t = _trainer;
        var module = t.LightningModule ?? throw new InvalidOperationException("Step needs a running trainer: call it from a step or hook.");
        // Reduced before the precision looks at them, so every process unscales, checks and clips the same gradients.
        Func<Tensor?>? reducing = null;
        if (closure is null) t.Strategy.ReduceGradients(module);
        else reducing = () =>
        {
            var loss = closure();
            if (loss is not null) t.Strategy.ReduceGradients(module);
            return loss;
        };
        if (t.Strategy.OptimizerStep(Optimizer, reducing, () => BeforeStep(module)) != OptimizerStepOutcome.NoLoss) t.GlobalStep++;
    }

    /// <summary>Zeroes the gradients of this optimizer's parameters.</summary>
    public void ZeroGrad() => Optimizer.zero_grad();

    private void BeforeStep(LightningModule module)
    {
        var t = _trainer;
        t.Hooks.Call(Hooks.OnBeforeOptimizerStep, module, Optimizer);
        if (module.AutomaticOptimization)
            t.Hooks.Call(Hooks.ConfigureGradientClipping, module, (Optimizer, t.Options.GradientClipVal, t.Options.GradientClipAlgorithm));
    }
}
