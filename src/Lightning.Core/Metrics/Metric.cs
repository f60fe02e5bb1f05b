using System.Text.Json.Nodes;
using Lightning.Checkpoints;
using Lightning.Strategies;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Metrics;

/// <summary>
/// A metric that accumulates state tensors over batches and computes its value from them, as torchmetrics'
/// <c>Metric</c>: <see cref="Update"/> per batch, <see cref="Compute"/> when the value is wanted, <see cref="Reset"/>
/// to start over. Under "ddp" the states of every rank are combined before computing (sums reduced, collected samples
/// gathered), so the value equals what one process computes over all the data.
/// </summary>
/// <remarks>
/// <para>
/// Log it with <see cref="LightningModule.Log(string, Metric, bool, bool?, bool?, bool)"/>: the trainer computes it at the
/// epoch's end and resets it. State tensors live outside the trainer's per-step dispose scopes (they are owned by the
/// metric) on the device of the latest batch.
/// </para>
/// <para>
/// A metric held in a field of a <see cref="LightningModule"/> with <see cref="Persistent"/> set travels in the module's
/// checkpoints under the field's name (torchmetrics keeps state in <c>state_dict</c> only after <c>persistent(True)</c>).
/// </para>
/// </remarks>
public abstract class Metric
{
    private sealed class Slot(StateReduction reduction, Tensor defaultValue)
    {
        public StateReduction Reduction { get; } = reduction;
        public Tensor Default { get; } = defaultValue;
        public Tensor? Sum { get; set; }
        public List<Tensor> Parts { get; set; } = [];
    }

    private readonly Dictionary<string, Slot> _slots = new();
    private Dictionary<string, Tensor>? _synced;
    private double? _batchValue;

    /// <summary>Creates a metric; <paramref name="name"/> names it in error messages.</summary>
    protected Metric(string name)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        Name = name;
    }

    /// <summary>The metric's name as error messages give it, e.g. <c>Accuracy (multiclass)</c>.</summary>
    public string Name { get; }

    /// <summary>Keep the state in the checkpoints of the module that holds this metric in a field (default false, as torchmetrics).</summary>
    public bool Persistent { get; set; }

    /// <summary>This process's states (not synced), by name; collected samples are concatenated. The tensors are the metric's: do not dispose them.</summary>
    public IReadOnlyDictionary<string, Tensor> States => _slots.Keys.ToDictionary(name => name, LocalState);

    /// <summary>The value of the latest <see cref="Forward"/> batch (null after <see cref="Update"/> or <see cref="Reset"/>); what <c>Log</c> logs per step.</summary>
    public double? BatchValue => _batchValue;

    /// <summary>Under a multi-process strategy, the strategy whose collectives sync the states before <see cref="Compute"/>.</summary>
    internal Strategy? DistributedStrategy { get; set; }

    /// <summary>False for metrics whose value has several elements (a confusion matrix), which <c>Log</c> cannot take.</summary>
    internal virtual bool IsScalar => true;

    /// <summary>Adds the batch to the state.</summary>
    /// <param name="preds">Predictions for the batch.</param>
    /// <param name="target">Targets for the batch.</param>
    public void Update(Tensor preds, Tensor target)
    {
        ArgumentNullException.ThrowIfNull(preds);
        ArgumentNullException.ThrowIfNull(target);
        _batchValue = null;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        UpdateState(preds.detach(), target.detach());
    }

    /// <summary>
    /// Adds the batch to the state and returns the metric's value on this batch alone (torchmetrics' <c>forward</c>),
    /// without syncing ranks; <c>Log</c> logs that value per step.
    /// </summary>
    public Tensor Forward(Tensor preds, Tensor target)
    {
        ArgumentNullException.ThrowIfNull(preds);
        ArgumentNullException.ThrowIfNull(target);
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        // As torchmetrics' reduce-state forward: the batch alone in fresh states, then merged into the kept ones.
        var kept = _slots.ToDictionary(s => s.Key, s => (s.Value.Sum, s.Value.Parts));
        foreach (var slot in _slots.Values) (slot.Sum, slot.Parts) = (null, []);
        Tensor value;
        try
        {
            UpdateState(preds.detach(), target.detach());
            value = ComputeValue();
        }
        finally
        {
            foreach (var (name, (sum, parts)) in kept)
            {
                var slot = _slots[name];
                if (sum is not null) Accumulate(name, sum);
                sum?.Dispose();
                slot.Parts.InsertRange(0, parts);
            }
        }
        _batchValue = value.numel() == 1 ? value.ToDouble() : null;
        return value.MoveToOuterDisposeScope();
    }

    /// <summary>The metric's value over everything since the last <see cref="Reset"/>, over every rank under "ddp" (every rank must call it).</summary>
    public Tensor Compute()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        if (DistributedStrategy is { WorldSize: > 1 } strategy) _synced = Sync(strategy);
        try
        {
            return ComputeValue().MoveToOuterDisposeScope();
        }
        finally
        {
            _synced = null;
        }
    }

    /// <summary>Returns every state to its default (nothing seen).</summary>
    public void Reset()
    {
        _batchValue = null;
        foreach (var slot in _slots.Values) Clear(slot);
    }

    /// <summary>Adds the batch (already detached, inside a dispose scope) to the states with <see cref="Accumulate"/>.</summary>
    protected abstract void UpdateState(Tensor preds, Tensor target);

    /// <summary>The value from the states read with <see cref="State"/> (synced across ranks when computing under "ddp").</summary>
    protected abstract Tensor ComputeValue();

    /// <summary>
    /// Declares a state (torchmetrics' <c>add_state</c>): for <see cref="StateReduction.Sum"/> <paramref name="defaultValue"/>
    /// is its starting value (zeros of its shape and dtype); for <see cref="StateReduction.Cat"/> an empty tensor whose
    /// shape after the first dimension and dtype are those of the samples.
    /// </summary>
    protected void AddState(string name, Tensor defaultValue, StateReduction reduction)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        ArgumentNullException.ThrowIfNull(defaultValue);
        if (_slots.ContainsKey(name)) throw new ArgumentException($"{Name} already has a state named '{name}'.", nameof(name));
        if (reduction == StateReduction.Cat && (defaultValue.dim() == 0 || defaultValue.shape[0] != 0))
            throw new ArgumentException($"{Name}: the default of Cat state '{name}' must be empty along its first dimension; got shape [{string.Join(", ", defaultValue.shape)}].", nameof(defaultValue));
        var slot = new Slot(reduction, defaultValue.detach().clone().DetachFromDisposeScope());
        _slots[name] = slot;
    }

    /// <summary>Adds <paramref name="value"/> to a Sum state, or appends its rows to a Cat state; the metric keeps its own copy.</summary>
    protected void Accumulate(string name, Tensor value)
    {
        ArgumentNullException.ThrowIfNull(value);
        var slot = SlotOf(name);
        var owned = value.detach().to(slot.Default.dtype);
        if (slot.Reduction == StateReduction.Cat)
        {
            slot.Parts.Add(owned.clone().DetachFromDisposeScope());
            return;
        }
        var current = slot.Sum ?? slot.Default.to(owned.device);
        var next = current.to(owned.device).add(owned).DetachFromDisposeScope();
        slot.Sum?.Dispose();
        slot.Sum = next;
    }

    /// <summary>A state's value for <see cref="ComputeValue"/>: synced across ranks while <see cref="Compute"/> runs under "ddp", else this process's.</summary>
    protected Tensor State(string name)
    {
        SlotOf(name);
        return _synced is { } synced ? synced[name] : LocalState(name);
    }

    /// <summary>The non-default states as JSON (dtype, shape, bytes), for checkpoints.</summary>
    internal JsonObject SaveState()
    {
        var saved = new JsonObject();
        using var scope = NewDisposeScope();
        foreach (var name in _slots.Keys) saved[name] = TensorJson.ToJson(LocalState(name));
        return saved;
    }

    /// <summary>Replaces the states with what <see cref="SaveState"/> wrote; <paramref name="what"/> names the source in errors.</summary>
    internal void LoadState(JsonObject saved, string what)
    {
        foreach (var (name, slot) in _slots)
        {
            if (saved[name] is not JsonObject entry)
                throw new InvalidDataException($"{what} has no state '{name}' for {Name}; it holds [{string.Join(", ", saved.Select(s => s.Key))}].");
            var value = TensorJson.FromJson(entry, $"state '{name}' of {Name}");
            var expected = slot.Default.shape.Skip(slot.Reduction == StateReduction.Cat ? 1 : 0).ToArray();
            var got = value.shape.Skip(slot.Reduction == StateReduction.Cat ? 1 : 0).ToArray();
            if (!expected.SequenceEqual(got))
                throw new InvalidDataException(
                    $"{what}: state '{name}' of {Name} has shape [{string.Join(", ", value.shape)}]; this metric's is [{string.Join(", ", slot.Default.shape)}] (were NumClasses the same?).");
            Clear(slot);
            if (slot.Reduction == StateReduction.Sum) slot.Sum = value.to(slot.Default.dtype).DetachFromDisposeScope();
            else slot.Parts.Add(value.to(slot.Default.dtype).DetachFromDisposeScope());
        }
    }

    private Slot SlotOf(string name) => _slots.TryGetValue(name, out var slot)
        ? slot
        : throw new ArgumentException($"{Name} has no state named '{name}'; it has [{string.Join(", ", _slots.Keys)}].", nameof(name));

    private Tensor LocalState(string name)
    {
        var slot = SlotOf(name);
        if (slot.Reduction == StateReduction.Sum) return slot.Sum ?? slot.Default;
        if (slot.Parts.Count > 1)
        {
            // Concatenated once and kept as one part, so repeated reads do not copy again.
            var joined = cat(slot.Parts.Select(p => p.to(slot.Parts[^1].device)).ToList(), 0).DetachFromDisposeScope();
            foreach (var part in slot.Parts) part.Dispose();
            slot.Parts = [joined];
        }
        return slot.Parts.Count == 1 ? slot.Parts[0] : slot.Default;
    }

    private static void Clear(Slot slot)
    {
        slot.Sum?.Dispose();
        slot.Sum = null;
        foreach (var part in slot.Parts) part.Dispose();
        slot.Parts = [];
    }

    /// <summary>
    /// Every state combined over the ranks, in declaration order (the same on every rank, so collectives meet): sums
    /// reduced; collected samples padded to the longest rank's count, gathered, and cut back to each rank's count.
    /// </summary>
    private Dictionary<string, Tensor> Sync(Strategy strategy)
    {
        var synced = new Dictionary<string, Tensor>();
        foreach (var (name, slot) in _slots)
        {
            var local = LocalState(name);
            if (slot.Reduction == StateReduction.Sum)
            {
                synced[name] = strategy.Reduce(local, ReduceFx.Sum);
                continue;
            }
            var counts = strategy.AllGather(tensor(new[] { local.shape[0] })).reshape(-1).data<long>().ToArray();
            var longest = counts.Max();
            var padded = longest == local.shape[0] ? local : cat([local, zeros([longest - local.shape[0], .. local.shape.Skip(1)], local.dtype, local.device)], 0);
            var gathered = strategy.AllGather(padded.contiguous());
            synced[name] = cat(counts.Select((count, rank) => gathered[rank].narrow(0, 0, count)).ToList(), 0);
        }
        return synced;
    }
}
