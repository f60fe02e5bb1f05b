using System.Reflection;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lightning.Strategies;

/// <summary>
/// Reads and writes any TorchSharp optimizer's per-parameter state without knowing its type, so sharding and resharding
/// work for every optimizer alike: a state's public <see cref="Tensor"/> fields are elementwise (shaped like the
/// parameter, possibly null until the first step) and its other public fields are scalars (step counts, products).
/// </summary>
internal static class OptimizerStates
{
    private static readonly FieldInfo s_state = typeof(OptimizerHelper).GetField("_state", BindingFlags.Instance | BindingFlags.NonPublic)
        ?? throw new MissingFieldException("TorchSharp's OptimizerHelper no longer keeps its state in _state; update OptimizerStates.");

    /// <summary>The optimizer as TorchSharp's base of every built-in one; fails naming the type otherwise.</summary>
    public static OptimizerHelper Helper(optim.Optimizer optimizer, string strategy) =>
        optimizer as OptimizerHelper ?? throw new NotSupportedException(
            $"Strategy = \"{strategy}\" shards the state of TorchSharp's elementwise optimizers (SGD, Adam, AdamW, Adamax, NAdam, RAdam, " +
            $"RMSprop, Adagrad, Adadelta, ASGD, Rprop); {optimizer.GetType().Name} updates its parameters as a whole, so use \"ddp\" for it.");

    /// <summary>The state <paramref name="optimizer"/> keeps for <paramref name="parameter"/>.</summary>
    public static OptimizerState Of(OptimizerHelper optimizer, Parameter parameter)
    {
        var states = s_state.GetValue(optimizer)!;
        var indexer = states.GetType().GetProperty("Item", [typeof(IntPtr)])!;
        return (OptimizerState)indexer.GetValue(states, [parameter.Handle])!;
    }

    public static FieldInfo[] TensorFields(Type stateType) =>
        stateType.GetFields(BindingFlags.Instance | BindingFlags.Public).Where(f => f.FieldType == typeof(Tensor)).ToArray();

    public static FieldInfo[] ScalarFields(Type stateType) =>
        stateType.GetFields(BindingFlags.Instance | BindingFlags.Public).Where(f => f.FieldType.IsPrimitive).ToArray();

    /// <summary>The bytes of state tensors <paramref name="optimizer"/> keeps for its parameters.</summary>
    public static long Bytes(OptimizerHelper optimizer) => optimizer.parameters()
        .Select(p => Of(optimizer, p))
        .Sum(state => TensorFields(state.GetType()).Select(f => (Tensor?)f.GetValue(state)).OfType<Tensor>().Sum(t => t.numel() * t.ElementSize));

    /// <summary>Takes a state's tensors out of any dispose scope, so they live as long as the state.</summary>
    public static void DetachFromDisposeScope(OptimizerState state)
    {
        foreach (var field in TensorFields(state.GetType())) ((Tensor?)field.GetValue(state))?.DetachFromDisposeScope();
    }

    /// <summary>Replaces a tensor field, disposing what it held.</summary>
    public static void Set(FieldInfo field, OptimizerState state, Tensor? value)
    {
        var old = (Tensor?)field.GetValue(state);
        field.SetValue(state, value);
        if (old is not null && !ReferenceEquals(old, value)) old.Dispose();
    }

    /// <summary>
    /// Copies elements [<paramref name="offset"/>, +<paramref name="length"/>) of a whole parameter's state into the
    /// state of a piece of it (same optimizer type), in place where the piece's state already has that tensor.
    /// </summary>
    public static void CopySlice(OptimizerState whole, long offset, long length, OptimizerState piece)
    {
        using var scope = NewDisposeScope();
        foreach (var field in ScalarFields(whole.GetType())) field.SetValue(piece, field.GetValue(whole));
        foreach (var field in TensorFields(whole.GetType()))
        {
            var source = (Tensor?)field.GetValue(whole);
            var target = (Tensor?)field.GetValue(piece);
            if (source is null || source.numel() == 0) Set(field, piece, null);
            else if (target is not null && target.numel() == length) target.view(-1).copy_(source.detach().view(-1).narrow(0, offset, length));
            else Set(field, piece, source.detach().view(-1).narrow(0, offset, length).clone().DetachFromDisposeScope());
        }
    }

    /// <summary>
    /// Frees the state <paramref name="optimizer"/> keeps for its parameters: a sharded strategy steps a rebuilt optimizer
    /// instead. Tensors become empty ones, so disposing the optimizer later still works.
    /// </summary>
    public static void Release(OptimizerHelper optimizer)
    {
        foreach (var parameter in optimizer.parameters())
        {
            var state = Of(optimizer, parameter);
            foreach (var field in TensorFields(state.GetType()))
                if (field.GetValue(state) is not null) Set(field, state, empty(0).DetachFromDisposeScope());
        }
    }
}
