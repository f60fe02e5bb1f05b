using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lightning.Strategies;

/// <summary>
/// ZeRO stage 2 for one optimizer on one rank. The optimizer's parameters, in group order, form one flat vector; rank r
/// owns the r-th of N equal contiguous ranges of it. Gradients are reduce-scattered bucket by bucket, so each rank
/// receives the mean only where it owns; an optimizer of the configured type, rebuilt over the owned pieces (one per
/// parameter the range touches; same groups, same options objects, so schedulers still apply), keeps state for those
/// pieces alone and steps them; the updated pieces are then all-gathered, bucket by bucket, into every rank's parameters.
/// Pieces of float32 and float64 parameters are views of the parameters themselves; pieces of lower precision parameters
/// are float32 master copies.
/// </summary>
internal sealed class ShardedOptimizer
{
    private readonly DdpShardedStrategy _strategy;
    private readonly Parameter[] _parameters;
    private readonly long[] _offsets;
    private readonly List<Piece> _pieces = [];
    private readonly long _ownedStart, _ownedEnd, _share, _bucketElements;
    private readonly ScalarType _dtype;
    private readonly Tensor _bucket, _mine;

    /// <summary>Elements [Offset, Offset + Length) of parameter <c>Index</c> (flat position <c>FlatStart</c>), as a parameter of the rebuilt optimizer.</summary>
    internal sealed record Piece(int Index, long Offset, long Length, long FlatStart, Parameter Tensor, bool IsView);

    public ShardedOptimizer(optim.Optimizer optimizer, DdpShardedStrategy strategy, int bucketElements)
    {
        _strategy = strategy;
        Original = OptimizerStates.Helper(optimizer, strategy.Name);
        var groups = Original.ParamGroups.Cast<ParamGroup>().ToList();
        var owners = groups.SelectMany((group, g) => group.Parameters.Select(p => (Parameter: p, Group: g))).ToList();
        _parameters = owners.Select(o => o.Parameter).ToArray();
        if (_parameters.FirstOrDefault(p => !p.is_contiguous()) is { } strided)
            throw new NotSupportedException(
                $"Strategy = \"{strategy.Name}\" shards contiguous parameters; one of shape [{string.Join(", ", strided.shape)}] is not " +
                "(channels-last weights, for instance): make the module's parameters contiguous or use \"ddp\".");
        _offsets = new long[_parameters.Length + 1];
        for (int i = 0; i < _parameters.Length; i++) _offsets[i + 1] = _offsets[i] + _parameters[i].numel();
        _dtype = _parameters.Any(p => p.dtype == ScalarType.Float64) ? ScalarType.Float64 : ScalarType.Float32;

        int world = strategy.WorldSize, rank = strategy.GlobalRank;
        long total = _offsets[^1];
        _share = (total + world - 1) / world;
        (_ownedStart, _ownedEnd) = (Math.Min(total, rank * _share), Math.Min(total, (rank + 1) * _share));
        _bucketElements = Math.Max(1, bucketElements);
        var groupPieces = groups.Select(_ => new List<Parameter>()).ToArray();
        for (int i = 0; i < _parameters.Length; i++)
        {
            long a = Math.Max(_ownedStart, _offsets[i]), b = Math.Min(_ownedEnd, _offsets[i + 1]);
            if (a >= b) continue;
            var piece = NewPiece(i, a - _offsets[i], b - a, a);
            _pieces.Add(piece);
            groupPieces[owners[i].Group].Add(piece.Tensor);
        }
        _bucket = empty(Math.Min(_bucketElements, total), _dtype).DetachFromDisposeScope();
        _mine = empty(Math.Min(_bucketElements, _share), _dtype).DetachFromDisposeScope();

        Optimizer = Rebuild(Original, groups, groupPieces, strategy.Name);
        foreach (var piece in _pieces)
        {
            var state = OptimizerStates.Of(Optimizer, piece.Tensor);
            // Built during a step, inside the trainer's per-batch scope: the state must outlive it.
            OptimizerStates.DetachFromDisposeScope(state);
            OptimizerStates.CopySlice(OptimizerStates.Of(Original, _parameters[piece.Index]), piece.Offset, piece.Length, state);
        }
        OptimizerStates.Release(Original);
    }

    /// <summary>The optimizer the module configured; its state is released, since <see cref="Optimizer"/> steps instead.</summary>
    public OptimizerHelper Original { get; }

    /// <summary>The optimizer over this rank's pieces.</summary>
    public OptimizerHelper Optimizer { get; }

    /// <summary>This rank's pieces, in flat order.</summary>
    public IReadOnlyList<Piece> Pieces => _pieces;

    /// <summary>The strategy's backward-pass count when the gradients were last reduce-scattered (-1: never).</summary>
    public long ReducedAfter { get; set; } = -1;

    /// <summary>The number of elements of each of the original optimizer's parameters, in group order.</summary>
    public IEnumerable<long> ParameterSizes => _parameters.Select(p => p.numel());

    /// <summary>
    /// Averages the gradients over the ranks, keeping only this rank's part: after it, each piece's gradient is the mean
    /// and the rest of this rank's gradients are left as they were. A parameter without a gradient sends zeros and its
    /// pieces get none, so the optimizer skips them.
    /// </summary>
    public void ReduceScatterGradients()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var world = _strategy.WorldSize;
        var grads = _parameters.Select(p => p.grad).ToArray();
        for (int i = 0; i < grads.Length; i++)
            if (grads[i] is { } grad && !grad.is_contiguous()) _parameters[i].grad = grads[i] = grad.contiguous();
        foreach (var (start, size, counts) in Buckets())
        {
            var send = _bucket.narrow(0, 0, size);
            CopyOut(i => grads[i], start, send);
            var mine = _mine.narrow(0, 0, counts[_strategy.GlobalRank]);
            _strategy.ReduceScatter(send, mine, counts);
            mine.div_(world);
            // Each piece's slice of the mean goes where the optimizer reads it: the parameter's own gradient (views) or the master's.
            ForEachPieceSlice(Math.Max(start, _ownedStart), mine.numel(), (piece, at, from, length) =>
            {
                if (grads[piece.Index] is not { } grad) return;
                var slice = mine.narrow(0, from, length);
                if (piece.IsView) grad.view(-1).narrow(0, piece.Offset + at, length).copy_(slice);
                else
                {
                    var master = piece.Tensor.grad ?? (piece.Tensor.grad = zeros_like(piece.Tensor));
                    master.narrow(0, at, length).copy_(slice);
                }
            });
        }
        foreach (var piece in _pieces)
        {
            if (grads[piece.Index] is not { } grad) piece.Tensor.grad = null;
            else if (piece.IsView) piece.Tensor.grad = grad.view(-1).narrow(0, piece.Offset, piece.Length);
        }
    }

    /// <summary>Sends each rank's stepped pieces to every rank, so all hold the same updated parameters.</summary>
    public void AllGatherParameters()
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        foreach (var (start, size, counts) in Buckets())
        {
            var mine = _mine.narrow(0, 0, counts[_strategy.GlobalRank]);
            ForEachPieceSlice(Math.Max(start, _ownedStart), mine.numel(), (piece, at, from, length) =>
                mine.narrow(0, from, length).copy_(piece.Tensor.narrow(0, at, length)));
            var all = _bucket.narrow(0, 0, size);
            _strategy.AllGatherInto(mine, all, counts);
            CopyIn(all, start);
        }
    }

    /// <summary>The buckets: each one's flat range and how many of its elements each rank owns (its rank-ordered blocks).</summary>
    private IEnumerable<(long Start, long Size, int[] Counts)> Buckets()
    {
        int world = _strategy.WorldSize;
        long total = _offsets[^1];
        for (long start = 0; start < total; start += _bucketElements)
        {
            var size = Math.Min(_bucketElements, total - start);
            var counts = new int[world];
            for (int r = 0; r < world; r++)
            {
                long from = Math.Max(start, Math.Min(total, r * _share)), to = Math.Min(start + size, Math.Min(total, (r + 1) * _share));
                counts[r] = (int)Math.Max(0, to - from);
            }
            yield return (start, size, counts);
        }
    }

    /// <summary>
    /// Calls <paramref name="action"/>(piece, offset in the piece, offset in the range, length) for each piece's part of
    /// the flat range [<paramref name="flatStart"/>, +<paramref name="length"/>) of this rank's elements.
    /// </summary>
    private void ForEachPieceSlice(long flatStart, long length, Action<Piece, long, long, long> action)
    {
        long end = flatStart + length;
        foreach (var piece in _pieces)
        {
            long a = Math.Max(flatStart, piece.FlatStart), b = Math.Min(end, piece.FlatStart + piece.Length);
            if (a < b) action(piece, a - piece.FlatStart, a - flatStart, b - a);
        }
    }

    /// <summary>
    /// Clips the gradients by their total norm over every rank's pieces (Lightning's clip by norm, computed across
    /// shards); returns that norm before clipping.
    /// </summary>
    public double ClipByNorm(double maxNorm)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var grads = _pieces.Select(p => p.Tensor.grad).OfType<Tensor>().ToList();
        double local = 0;
        foreach (var grad in grads)
        {
            var norm = grad.norm().ToDouble();
            local += norm * norm;
        }
        var total = Math.Sqrt(_strategy.Reduce([local], ReduceFx.Sum)[0]);
        // As torch.nn.utils.clip_grad_norm_: scale only when the norm is above the limit.
        var coefficient = maxNorm / (total + 1e-6);
        if (coefficient < 1)
            foreach (var grad in grads) grad.mul_(coefficient);
        return total;
    }

    /// <summary>Clamps this rank's piece gradients to ±<paramref name="clipVal"/>.</summary>
    public void ClipByValue(double clipVal)
    {
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        foreach (var piece in _pieces)
            piece.Tensor.grad?.clamp_(-clipVal, clipVal);
    }

    private Piece NewPiece(int index, long offset, long length, long flatStart)
    {
        var parameter = _parameters[index];
        using var noGrad = no_grad();
        var isView = parameter.dtype == _dtype;
        var flat = parameter.detach().view(-1).narrow(0, offset, length);
        var data = isView ? flat : flat.to(_dtype).clone();
        return new Piece(index, offset, length, flatStart, new Parameter(data.DetachFromDisposeScope(), requires_grad: true), isView);
    }

    /// <summary>Flat elements [<paramref name="start"/>, +destination length) of the tensors <paramref name="source"/> gives (zeros where it gives none).</summary>
    private void CopyOut(Func<int, Tensor?> source, long start, Tensor destination)
    {
        long end = start + destination.numel();
        for (int i = FirstAt(start); i < _parameters.Length && _offsets[i] < end; i++)
        {
            long a = Math.Max(start, _offsets[i]), b = Math.Min(end, _offsets[i + 1]);
            if (a >= b) continue;
            var slice = destination.narrow(0, a - start, b - a);
            if (source(i) is { } tensor) slice.copy_(tensor.reshape(-1).narrow(0, a - _offsets[i], b - a));
            else slice.zero_();
        }
    }

    /// <summary>Writes <paramref name="source"/> into the parameters' flat elements from <paramref name="start"/>.</summary>
    private void CopyIn(Tensor source, long start)
    {
        long end = start + source.numel();
        for (int i = FirstAt(start); i < _parameters.Length && _offsets[i] < end; i++)
        {
            long a = Math.Max(start, _offsets[i]), b = Math.Min(end, _offsets[i + 1]);
            if (a >= b) continue;
            _parameters[i].view(-1).narrow(0, a - _offsets[i], b - a).copy_(source.narrow(0, a - start, b - a));
        }
    }

    private int FirstAt(long flat)
    {
        var index = Array.BinarySearch(_offsets, flat);
        return index >= 0 ? index : ~index - 1;
    }

    /// <summary>
    /// A new optimizer of <paramref name="original"/>'s type over <paramref name="pieces"/>, group by group, through its
    /// constructor that takes parameter groups. Each new group shares its original group's options object, so a learning
    /// rate scheduler bound to the original optimizer sets the rate the rebuilt one uses.
    /// </summary>
    private static OptimizerHelper Rebuild(OptimizerHelper original, IReadOnlyList<ParamGroup> groups, IReadOnlyList<List<Parameter>> pieces, string strategy)
    {
        var type = original.GetType();
        var constructor = type.GetConstructors()
            .Select(c => (Constructor: c, Parameters: c.GetParameters()))
            .Where(c => c.Parameters.Length > 0 && c.Parameters.Skip(1).All(p => p.HasDefaultValue || p.Name == "lr"))
            .Select(c => (c.Constructor, c.Parameters, Element: GroupElement(c.Parameters[0].ParameterType)))
            .FirstOrDefault(c => c.Element is not null && groups.All(g => c.Element.IsInstanceOfType(g)));
        if (constructor.Constructor is null)
            throw new NotSupportedException(
                $"Strategy = \"{strategy}\" rebuilds the optimizer over each rank's shard through its constructor taking parameter groups; " +
                $"{type.Name} has none whose other arguments (but the rate) have defaults. Use one of TorchSharp's built-in optimizers, or \"ddp\".");
        var element = constructor.Element!;
        var array = Array.CreateInstance(element, groups.Count);
        for (int g = 0; g < groups.Count; g++)
        {
            var group = (ParamGroup)Activator.CreateInstance(groups[g].GetType())!;
            group.Parameters = pieces[g];
            group.Options = groups[g].Options;
            array.SetValue(group, g);
        }
        // Adding a group resets its options' initial rate to the current one; schedulers read the original's.
        var initial = groups.Select(g => g.InitialLearningRate).ToArray();
        // Every group's options are complete, so the constructor's defaults only fill the new optimizer's own defaults.
        var rate = groups.Count > 0 ? groups[0].LearningRate : 1e-3;
        var arguments = constructor.Parameters.Select((p, i) => i == 0 ? array : p.HasDefaultValue ? p.DefaultValue : rate).ToArray();
        var rebuilt = (OptimizerHelper)constructor.Constructor.Invoke(arguments);
        for (int g = 0; g < groups.Count; g++) groups[g].InitialLearningRate = initial[g];
        return rebuilt;
    }

    private static Type? GroupElement(Type parameterType) =>
        parameterType.IsGenericType && parameterType.GetGenericTypeDefinition() == typeof(IEnumerable<>)
        && typeof(ParamGroup).IsAssignableFrom(parameterType.GetGenericArguments()[0])
            ? parameterType.GetGenericArguments()[0]
            : null;
}
