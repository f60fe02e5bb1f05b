using static TorchSharp.torch;

namespace Lightning.Loops.Optimization;

/// <summary>The backward pass with its hooks around it, for automatic optimization and <see cref="LightningModule.ManualBackward"/> alike.</summary>
internal static class BackwardPass
{
    public static void Run(Trainer trainer, LightningModule module, Tensor loss)
    {
        trainer.Hooks.Call(Hooks.OnBeforeBackward, module, loss);
        trainer.Hooks.Call(Hooks.Backward, module, loss);
        trainer.Hooks.Call(Hooks.OnAfterBackward, module);
    }
}
