using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Precision;

/// <summary>
/// What a precision does to a run (Lightning's precision plugins): the dtype of the weights and floating inputs, a scope
/// around each step's forward, the loss before backward, and the optimizer step with any loss scaling (unscale before
/// the hooks and clipping, skip on overflow, update). A <see cref="Strategies.Strategy"/> owns one; the built-in ones
/// are chosen by name (<see cref="TrainerOptions.Precision"/>), and an instance of your own subclass may be passed instead.
/// </summary>
public abstract class PrecisionPlugin
{
    /// <summary>The precision's name, e.g. "bf16-mixed".</summary>
    public abstract string Name { get; }

    /// <summary>The dtype weights and floating inputs are cast to, or null to leave them.</summary>
    public virtual ScalarType? Dtype => null;

    /// <summary>Casts <paramref name="module"/> for this precision (Lightning's <c>convert_module</c>); the default casts to <see cref="Dtype"/>.</summary>
    public virtual void ConvertModule(nn.Module module)
    {
        ArgumentNullException.ThrowIfNull(module);
        if (Dtype is { } dtype) module.to(dtype);
    }

    /// <summary>A scope around each step's forward and loss (autocast for mixed precision), or null for none.</summary>
    public virtual IDisposable? ForwardContext() => null;

    /// <summary>The tensor to call backward on for <paramref name="loss"/> (Lightning's <c>pre_backward</c>); loss scaling multiplies it.</summary>
    public virtual Tensor PreBackward(Tensor loss) => loss;

    /// <summary>Turns the gradients of <paramref name="optimizer"/>'s parameters back into true gradients, once per step (a no-op without loss scaling).</summary>
    public virtual void UnscaleGradients(optim.Optimizer optimizer) { }

    /// <summary>
    /// One optimizer step: runs <paramref name="closure"/> (the training step and backward), then
    /// <paramref name="beforeStep"/> (gradient reduction, the before-optimizer-step hooks and clipping, on true gradients),
    /// then steps the optimizer. With a null closure the gradients are already there (manual optimization, Fabric).
    /// </summary>
    /// <returns>False when the closure returned no loss, so nothing was stepped; true otherwise, also when a step was
    /// skipped because scaled gradients overflowed (such a step still counts, as in Lightning).</returns>
    public virtual bool OptimizerStep(optim.Optimizer optimizer, Func<Tensor?>? closure, Action? beforeStep)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        Tensor? loss = null;
        if (closure is not null && (loss = closure()) is null) return false;
        beforeStep?.Invoke();
        if (loss is null) optimizer.step();
        else optimizer.step(Reevaluating(loss, closure!));
        return true;
    }

    /// <summary>
    /// The closure to hand to <c>optimizer.step</c> once it has run: its first call returns the loss already computed;
    /// optimizers that evaluate again (LBFGS) run the training step again.
    /// </summary>
    protected static Func<Tensor> Reevaluating(Tensor loss, Func<Tensor?> closure)
    {
        ArgumentNullException.ThrowIfNull(loss);
        ArgumentNullException.ThrowIfNull(closure);
        var first = true;
        return () =>
        {
            if (!first) return closure() ?? throw new InvalidOperationException("The training step returned no loss when the optimizer evaluated it again.");
            first = false;
            return loss;
        };
    }

    /// <summary>The key of this plugin's state in checkpoints (Lightning keeps it under the plugin's class name).</summary>
    public virtual string StateKey => GetType().Name;

    /// <summary>This plugin's state for checkpoints (the loss scale), or null when it has none.</summary>
    public virtual JsonObject? SaveState() => null;

    /// <summary>Restores what <see cref="SaveState"/> returned.</summary>
    public virtual void LoadState(JsonObject state) { }

    /// <inheritdoc />
    public override string ToString() => Name;
}
