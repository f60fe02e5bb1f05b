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
    private bool _attached;

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

    /// <summary>
    /// Turns the gradients of <paramref name="optimizer"/>'s parameters back into true gradients (a no-op without loss
    /// scaling). It is called before clipping and again before the step, so it must unscale once per step.
    /// </summary>
    public virtual void UnscaleGradients(optim.Optimizer optimizer) { }

    /// <summary>
    /// One optimizer step: runs <paramref name="closure"/> (the training step, backward and gradient reduction), makes
    /// the gradients true ones (<see cref="UnscaleGradients"/>), runs <paramref name="beforeStep"/> (the
    /// before-optimizer-step hooks and clipping), then steps the optimizer. With a null closure the gradients are
    /// already there (manual optimization, Fabric).
    /// </summary>
    public virtual OptimizerStepOutcome OptimizerStep(optim.Optimizer optimizer, Func<Tensor?>? closure, Action? beforeStep)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        Tensor? loss = null;
        if (closure is not null && (loss = closure()) is null) return OptimizerStepOutcome.NoLoss;
        UnscaleGradients(optimizer);
        beforeStep?.Invoke();
        if (loss is null) optimizer.step();
        else optimizer.step(Reevaluating(loss, closure!));
        return OptimizerStepOutcome.Stepped;
    }

    /// <summary>
    /// Clips the gradients of <paramref name="optimizer"/>'s parameters by total norm or by value, after making them
    /// true gradients (Lightning's <c>clip_gradients</c>); returns the total norm before clipping when clipping by norm.
    /// </summary>
    public virtual double? ClipGradients(optim.Optimizer optimizer, double clipVal, GradientClipAlgorithm algorithm)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        UnscaleGradients(optimizer);
        return Clip(optimizer, clipVal, algorithm);
    }

    /// <summary>Clips gradients as they are, without unscaling; null when nothing has a gradient or when clipping by value.</summary>
    internal static double? Clip(optim.Optimizer optimizer, double clipVal, GradientClipAlgorithm algorithm)
    {
        if (clipVal <= 0 || double.IsNaN(clipVal))
            throw new ArgumentOutOfRangeException(nameof(clipVal), clipVal, $"clipVal = {clipVal} is not allowed: it must be greater than 0.");
        var parameters = optimizer.parameters().Where(p => p.grad is not null).ToArray();
        if (parameters.Length == 0) return null;
        if (algorithm == GradientClipAlgorithm.Norm) return nn.utils.clip_grad_norm_(parameters, clipVal);
        nn.utils.clip_grad_value_(parameters, clipVal);
        return null;
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

    /// <summary>
    /// Makes loss scaling decide overflow with <paramref name="agree"/> (true on every process when any found inf or
    /// NaN): a sharded strategy calls it, since each process then unscales only its shard of the gradients.
    /// </summary>
    internal virtual void AgreeOnOverflow(Func<bool, bool> agree) { }

    /// <summary>The key of this plugin's state in checkpoints (Lightning keeps it under the plugin's class name).</summary>
    public virtual string StateKey => GetType().Name;

    /// <summary>This plugin's state for checkpoints (the loss scale), or null when it has none.</summary>
    public virtual JsonObject? SaveState() => null;

    /// <summary>Restores what <see cref="SaveState"/> returned.</summary>
    public virtual void LoadState(JsonObject state) { }

    /// <inheritdoc />
    public override string ToString() => Name;

    /// <summary>Claims the plugin for one strategy, or gives it back (<paramref name="attach"/> false): its state (a loss scale) belongs to one run.</summary>
    internal void Attach(bool attach = true)
    {
        if (attach && _attached)
            throw new InvalidOperationException(
                $"This {GetType().Name} instance already serves another Trainer or Fabric; give each its own (TrainerOptions.Precision = new {GetType().Name}(...)).");
        _attached = attach;
    }
}
