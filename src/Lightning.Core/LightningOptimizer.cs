using static TorchSharp.torch;

namespace Lightning;

/// <summary>An optimizer as <see cref="LightningModule.Optimizers"/> hands it out for manual optimization: each <see cref="Step"/> counts as a global step.</summary>
public sealed class LightningOptimizer
{
    private readonly Trainer _trainer;

    internal LightningOptimizer(optim.Optimizer optimizer, Trainer trainer) => (Optimizer, _trainer) = (optimizer, trainer);

    /// <summary>The TorchSharp optimizer.</summary>
    public optim.Optimizer Optimizer { get; }

    /// <summary>Steps the optimizer (running <paramref name="closure"/> first when given) and counts a global step.</summary>
    public void Step(Func<Tensor>? closure = null)
    {
        _trainer.RunManualOptimizerStep(Optimizer, closure);
    }

    /// <summary>Zeroes the gradients of this optimizer's parameters.</summary>
    public void ZeroGrad() => Optimizer.zero_grad();
}
