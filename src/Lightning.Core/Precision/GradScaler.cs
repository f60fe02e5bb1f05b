using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Precision;

/// <summary>
/// Loss scaling for float16 training (PyTorch's <c>GradScaler</c>): the loss is multiplied by <see cref="Scale"/> so small
/// gradients survive float16; before the step gradients are divided back, and a step whose gradients hold inf or NaN is
/// skipped and the scale cut by <c>backoffFactor</c>. After <c>growthInterval</c> clean steps the scale grows.
/// </summary>
public sealed class GradScaler
{
    private readonly double _growthFactor, _backoffFactor;
    private readonly int _growthInterval;
    private readonly Dictionary<optim.Optimizer, bool> _unscaled = new();
    private bool _foundInf;

    /// <summary>PyTorch's defaults: scale 2^16, doubled after 2000 clean steps, halved on overflow.</summary>
    public GradScaler(double initScale = 65536.0, double growthFactor = 2.0, double backoffFactor = 0.5, int growthInterval = 2000)
    {
        if (initScale <= 0) throw new ArgumentOutOfRangeException(nameof(initScale), initScale, $"initScale = {initScale} is not allowed: it must be positive.");
        if (growthFactor <= 1) throw new ArgumentOutOfRangeException(nameof(growthFactor), growthFactor, $"growthFactor = {growthFactor} is not allowed: it must be greater than 1.");
        if (backoffFactor is <= 0 or >= 1) throw new ArgumentOutOfRangeException(nameof(backoffFactor), backoffFactor, $"backoffFactor = {backoffFactor} is not allowed: it must be between 0 and 1.");
        if (growthInterval < 1) throw new ArgumentOutOfRangeException(nameof(growthInterval), growthInterval, $"growthInterval = {growthInterval} is not allowed: it must be 1 or more.");
        (Scale, _growthFactor, _backoffFactor, _growthInterval) = (initScale, growthFactor, backoffFactor, growthInterval);
    }

    /// <summary>Turns this process's "found inf or NaN" into the decision of all processes (set by a sharded strategy).</summary>
    internal Func<bool, bool>? AgreeOnOverflow { get; set; }

    /// <summary>The current loss scale.</summary>
    public double Scale { get; private set; }

    /// <summary>Clean steps since the scale last changed.</summary>
    public int GrowthTracker { get; private set; }

    /// <summary>The loss times <see cref="Scale"/>; call <c>backward()</c> on the result.</summary>
    public Tensor ScaleLoss(Tensor loss) => loss * Scale;

    /// <summary>Divides the gradients of <paramref name="optimizer"/>'s parameters by the scale (once per step) and notes any inf/NaN.</summary>
    public void Unscale(optim.Optimizer optimizer)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        if (_unscaled.ContainsKey(optimizer))
            throw new InvalidOperationException("Unscale was already called for this optimizer since the last Update.");
        bool finite = true;
        using (no_grad())
        using (NewDisposeScope())
        {
            foreach (var p in optimizer.parameters())
            {
                if (p.grad is not { } grad) continue;
                grad.mul_(1.0 / Scale);
                if (finite && !grad.isfinite().all().item<bool>()) finite = false;
            }
        }
        if (AgreeOnOverflow is { } agree) finite = !agree(!finite);
        _unscaled[optimizer] = finite;
        _foundInf |= !finite;
    }

    /// <summary>True when <paramref name="optimizer"/>'s gradients were unscaled since the last <see cref="Update"/>.</summary>
    public bool HasUnscaled(optim.Optimizer optimizer) => _unscaled.ContainsKey(optimizer);

    /// <summary>Unscales if needed, then steps <paramref name="optimizer"/> unless its gradients overflowed; returns whether it stepped.</summary>
    public bool Step(optim.Optimizer optimizer)
    {
        if (!_unscaled.ContainsKey(optimizer)) Unscale(optimizer);
        if (!_unscaled[optimizer]) return false;
        optimizer.step();
        return true;
    }

    /// <summary>True when a gradient unscaled since the last <see cref="Update"/> held inf or NaN.</summary>
    public bool FoundInf => _foundInf;

    /// <summary>Adjusts the scale after a step: backoff on overflow, growth after enough clean steps.</summary>
    public void Update()
    {
        if (_foundInf)
        {
            Scale *= _backoffFactor;
            GrowthTracker = 0;
        }
        else if (++GrowthTracker == _growthInterval)
        {
            Scale *= _growthFactor;
            GrowthTracker = 0;
        }
        _foundInf = false;
        _unscaled.Clear();
    }

    /// <summary>The scaler's state for checkpoints.</summary>
    public JsonObject SaveState() => new() { ["scale"] = Scale, ["growth_tracker"] = GrowthTracker };

    /// <summary>Restores what <see cref="SaveState"/> returned.</summary>
    public void LoadState(JsonObject state)
    {
        Scale = (double?)state["scale"] ?? Scale;
        GrowthTracker = (int?)state["growth_tracker"] ?? 0;
    }
}
