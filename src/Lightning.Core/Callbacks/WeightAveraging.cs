using System.Text.Json.Nodes;
using Lightning.Checkpoints;
using static TorchSharp.torch;

namespace Lightning.Callbacks;

/// <summary>
/// The base of callbacks that keep an average of the module's weights during a fit (Lightning's <c>WeightAveraging</c>):
/// the averaged tensors, their update, copying or swapping them into the module, and saving them in checkpoints so a
/// resumed fit continues the average. A subclass says when to update and how to blend (<see cref="Blend"/>).
/// </summary>
/// <remarks>
/// <para>The average holds detached tensors owned by the callback, released by <see cref="Dispose"/> or when the next
/// fit is set up; it lives where the module's weights live once the strategy has placed them. State loaded outside a
/// fit is applied when the next fit starts (<see cref="OnFitStart"/>).</para>
/// <para>The first update copies the weights; later ones blend them in. Entries that are not averaged (integer buffers,
/// or every buffer without <c>averageBuffers</c>) are copied at each update.</para>
/// </remarks>
public abstract class WeightAveraging : Callback, IDisposable
{
    private readonly bool _includeBuffers, _averageBuffers;
    private List<(string Name, Tensor Average, bool Averaged)> _average = [];
    private JsonObject? _pendingState;
    private LightningModule? _module;
    private bool _inFit;

    /// <summary>An average of the parameters, and with <paramref name="includeBuffers"/> of the buffers too.</summary>
    /// <param name="includeBuffers">Keep the buffers (BatchNorm statistics) with the average.</param>
    /// <param name="averageBuffers">Average floating buffers; otherwise they are copied from the module at each update.</param>
    protected WeightAveraging(bool includeBuffers, bool averageBuffers) => (_includeBuffers, _averageBuffers) = (includeBuffers, averageBuffers);

    /// <summary>How many updates the average has had.</summary>
    public long AveragedCount { get; private set; }

    /// <summary>True once the average holds tensors.</summary>
    protected bool HasAverage => _average.Count > 0;

    /// <summary>A copy of the averaged tensors by their <c>state_dict</c> names (parameters, then buffers); yours to dispose. Empty before the average starts.</summary>
    public IReadOnlyDictionary<string, Tensor> AverageState()
    {
        var copies = new Dictionary<string, Tensor>();
        foreach (var (name, average, _) in _average) copies[name] = average.detach().clone().DetachFromDisposeScope();
        return copies;
    }

    /// <summary>Blends the module's <paramref name="value"/> into <paramref name="average"/> in place; <see cref="AveragedCount"/> updates came before.</summary>
    protected abstract void Blend(Tensor average, Tensor value);

    /// <summary>Called when a fit is set up, after the previous average is released: reset the subclass's counters here.</summary>
    protected virtual void OnFitSetup(LightningModule module) { }

    /// <summary>Writes the subclass's counters into the checkpoint state.</summary>
    protected virtual void SaveCounters(JsonObject state) { }

    /// <summary>Reads the subclass's counters from the checkpoint state.</summary>
    protected virtual void LoadCounters(JsonObject state) { }

    /// <summary>The key of the averaged tensors in the checkpoint state.</summary>
    protected virtual string AverageStateKey => "average_state";

    /// <summary>Starts the average afresh from the module's weights (no update counted).</summary>
    protected void StartAverage(LightningModule module)
    {
        ArgumentNullException.ThrowIfNull(module);
        Release();
        using var scope = NewDisposeScope();
        using (no_grad())
        {
            foreach (var (name, parameter) in module.named_parameters())
                _average.Add((name, parameter.detach().clone().DetachFromDisposeScope(), true));
            if (_includeBuffers)
                foreach (var (name, buffer) in module.named_buffers())
                    _average.Add((name, buffer.detach().clone().DetachFromDisposeScope(), _averageBuffers && buffer.is_floating_point()));
        }
    }

    /// <summary>Blends the module's weights into the average (the first update starts it and copies them) and counts the update.</summary>
    protected void UpdateAverage(LightningModule module)
    {
        ArgumentNullException.ThrowIfNull(module);
        if (!HasAverage) StartAverage(module);
        var current = Weights(module);
        using var scope = NewDisposeScope();
        using (no_grad())
            foreach (var (name, average, averaged) in _average)
            {
                var value = Find(current, name).detach();
                if (AveragedCount == 0 || !averaged) average.copy_(value);
                else Blend(average, value);
            }
        AveragedCount++;
    }

    /// <summary>Copies the average into the module's weights.</summary>
    protected void CopyAverageInto(LightningModule module)
    {
        ArgumentNullException.ThrowIfNull(module);
        var current = Weights(module);
        using (no_grad())
            foreach (var (name, average, _) in _average)
                Find(current, name).copy_(average);
    }

    /// <summary>Exchanges the average and the module's weights (validation with the average, then back).</summary>
    protected void SwapAverage(LightningModule module)
    {
        ArgumentNullException.ThrowIfNull(module);
        var current = Weights(module);
        using var scope = NewDisposeScope();
        using (no_grad())
            foreach (var (name, average, _) in _average)
            {
                var target = Find(current, name);
                var saved = target.detach().clone();
                target.copy_(average);
                average.copy_(saved);
            }
    }

    /// <inheritdoc />
    public override void Setup(Trainer trainer, LightningModule module, Stage stage)
    {
        if (stage != Stage.Fit) return;
        Release();
        AveragedCount = 0;
        _module = module;
        OnFitSetup(module);
        _inFit = true;
    }

    /// <summary>Applies state loaded outside a fit; the module is placed and any checkpoint restored by now.</summary>
    public override void OnFitStart(Trainer trainer, LightningModule module)
    {
        if (_pendingState is not { } state) return;
        _pendingState = null;
        LoadState(state);
    }

    /// <inheritdoc />
    public override void Teardown(Trainer trainer, LightningModule module, Stage stage)
    {
        if (stage == Stage.Fit) _inFit = false;
    }

    /// <inheritdoc />
    public override void OnException(Trainer trainer, LightningModule module, Exception exception) => _inFit = false;

    /// <inheritdoc />
    public override JsonObject? SaveState()
    {
        var tensors = new JsonObject();
        foreach (var (name, average, _) in _average) tensors[name] = TensorJson.ToJson(average);
        var state = new JsonObject { ["n_averaged"] = AveragedCount };
        SaveCounters(state);
        state[AverageStateKey] = tensors;
        return state;
    }

    /// <inheritdoc />
    public override void LoadState(JsonObject state)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (!_inFit)
        {
            // Loaded outside a fit, whose Setup starts afresh: apply it when the fit starts.
            _pendingState = (JsonObject)state.DeepClone();
            return;
        }
        _pendingState = null;
        AveragedCount = (long?)state["n_averaged"] ?? 0;
        LoadCounters(state);
        if (state[AverageStateKey] is not JsonObject { Count: > 0 } tensors) return;
        if (!HasAverage) StartAverage(_module!);
        var known = _average.Select(a => a.Name).ToHashSet();
        if (tensors.Select(t => t.Key).FirstOrDefault(name => !known.Contains(name)) is { } extra)
            throw new InvalidOperationException(
                $"The checkpoint's {GetType().Name} state has an average for '{extra}', which the module lacks; it was saved for a different module.");
        using (no_grad())
            foreach (var (name, average, _) in _average)
            {
                if (tensors[name] is not JsonObject saved)
                    throw new InvalidOperationException(
                        $"The checkpoint's {GetType().Name} state has no average for '{name}'; it was saved for a different module.");
                using var value = TensorJson.FromJson(saved, $"average for '{name}'");
                average.copy_(value);
            }
    }

    /// <summary>Releases the averaged tensors.</summary>
    public void Dispose()
    {
        Release();
        GC.SuppressFinalize(this);
    }

    private Dictionary<string, Tensor> Weights(LightningModule module) => _includeBuffers
        ? module.state_dict()
        : module.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);

    private Tensor Find(Dictionary<string, Tensor> weights, string name) =>
        weights.TryGetValue(name, out var tensor) ? tensor : throw new InvalidOperationException(
            $"The {GetType().Name} average has '{name}', which the module lacks; the state was saved for a different module.");

    private void Release()
    {
        foreach (var (_, average, _) in _average) average.Dispose();
        _average = [];
    }
}
