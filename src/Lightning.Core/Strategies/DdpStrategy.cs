using System.Text;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lightning.Strategies;

/// <summary>
/// Strategy "ddp": one process per device, started by <c>mpiexec</c> (or relaunched under it), rank 0's weights broadcast
/// at the start and gradients averaged with one Allreduce per optimizer step over a flattened buffer. With a world of one
/// process every collective is the identity and MPI is not needed.
/// </summary>
public class DdpStrategy : Strategy
{
    /// <summary>
    /// Large buffers go out in buckets of this many elements (25 MB of float32, Lightning's <c>bucket_cap_mb</c> default).
    /// Keep it under glibc's 32 MB mmap threshold: MPICH allocates a scratch buffer of the bucket's size per Allreduce,
    /// and above the threshold each one is freshly mapped memory whose page faults cost more than the transfer (measured
    /// on the 2-core VM: 40 MB in one Allreduce 0.15 GB/s, in 26 MB pieces 1.6 GB/s).
    /// </summary>
    internal const int BucketElements = 25 * 1024 * 1024 / sizeof(float);

    /// <summary>
    /// The flattened gradients, kept from step to step (grown when a larger module needs more): a fresh buffer every
    /// step costs an allocation, and above glibc's mmap threshold (32 MB) fresh pages that fault in on first touch.
    /// </summary>
    private Tensor? _gradients;

    private int _rank, _localRank, _worldSize = 1;

    /// <summary>Modules whose backward pass ran since their gradients were last averaged.</summary>
    private readonly HashSet<nn.Module> _unreduced = new(ReferenceEqualityComparer.Instance);

    /// <summary>A "ddp" strategy whose collectives wait <paramref name="timeout"/> for the other processes (default 30 minutes) before this one fails.</summary>
    public DdpStrategy(TimeSpan? timeout = null)
    {
        Timeout = timeout ?? TimeSpan.FromMinutes(30);
        if (Timeout <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(timeout), Timeout, $"timeout = {Timeout} is not allowed: it must be a positive duration.");
    }

    /// <summary>The strategy's name in messages.</summary>
    internal virtual string Name => "ddp";

    /// <summary>How long a collective (gradient Allreduce, barrier) waits for the other processes before this one fails.</summary>
    public TimeSpan Timeout { get; }

    /// <inheritdoc />
    public override int GlobalRank => _rank;

    /// <inheritdoc />
    public override int LocalRank => _localRank;

    /// <inheritdoc />
    public override int WorldSize => _worldSize;

    /// <summary>The device of this process: on CUDA, the process with local rank i drives the i-th of the devices asked for.</summary>
    public override Device RootDevice => Accelerator.DeviceType == DeviceType.CPU ? CPU : ParallelDevices[_localRank % ParallelDevices.Count];

    /// <summary>
    /// Joins the MPI world, or relaunches this program under <c>mpiexec</c> when it was started without it and asks for
    /// more than one process (this call then never returns: the process exits with the ranks' exit code).
    /// </summary>
    protected internal override void SetupEnvironment()
    {
        var devices = RequestedDevices;
        var perNode = devices.Ids?.Length ?? (devices.Count is { } n and >= 1 ? n : (int?)null);
        if (!Mpi.LaunchedByMpiexec)
        {
            var expected = NumNodes * (perNode ?? 1);
            if (expected == 1)
            {
                (_rank, _localRank, _worldSize) = (0, 0, 1);
                return;
            }
            if (NumNodes > 1)
                throw new InvalidOperationException(
                    $"Strategy = \"{Name}\" with NumNodes = {NumNodes} needs the processes started by mpiexec on every node " +
                    $"(e.g. mpiexec -hosts a,b -n {expected} dotnet app.dll); it relaunches itself on one node only.");
            DdpLauncher.Relaunch(expected);
        }
        var (rank, size) = Mpi.Initialize();
        if (perNode is { } devicesPerNode && size != NumNodes * devicesPerNode)
            throw new InvalidOperationException(
                $"Strategy = \"{Name}\" with NumNodes = {NumNodes} and Devices = {devices} expects {NumNodes * devicesPerNode} processes, " +
                $"but mpiexec started {size}. Start mpiexec -n {NumNodes * devicesPerNode}, or set Devices = \"auto\" to take the world size from mpiexec.");
        (_rank, _localRank, _worldSize) = (rank, Mpi.LocalRank, size);
    }

    /// <summary>Places the module as the base does, then copies rank 0's weights into every rank, so all start alike.</summary>
    public override void SetupModule(nn.Module module)
    {
        base.SetupModule(module);
        BroadcastModule(module);
    }

    /// <summary>This rank's shard of the loader: padded so every rank takes the same number of steps, shuffled if the loader was.</summary>
    public override IEnumerable<TBatch> ShardLoader<TBatch>(IEnumerable<TBatch> loader, bool training) =>
        DistributedLoader.Shard(loader, this, training, LightningSeed.GlobalSeed ?? 0);

    /// <summary>Copies rank 0's parameters and buffers into every rank, so all start from the same weights.</summary>
    private void BroadcastModule(nn.Module module)
    {
        if (WorldSize == 1) return;
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        foreach (var (_, value) in module.state_dict())
        {
            var host = value.device_type == DeviceType.CPU && value.is_contiguous() ? value : value.cpu().contiguous();
            BroadcastBytes(host, root: 0);
            if (!ReferenceEquals(host, value)) value.copy_(host);
        }
    }

    /// <summary>
    /// Averages the gradients of <paramref name="module"/>'s parameters over the ranks: one flattened buffer, summed by Allreduce
    /// (in buckets when large) and divided by the world size. A parameter without a gradient contributes zeros, so every
    /// rank sends the same layout, and stays without one.
    /// </summary>
    public override void ReduceGradients(nn.Module module)
    {
        ArgumentNullException.ThrowIfNull(module);
        _unreduced.Remove(module);
        if (WorldSize == 1) return;
        var trainable = module.parameters().Where(p => p.requires_grad).ToList();
        if (trainable.Count == 0) return;
        var dtype = trainable.Any(p => p.dtype == ScalarType.Float64) ? ScalarType.Float64 : ScalarType.Float32;
        var total = trainable.Sum(p => p.numel());
        if (_gradients is null || _gradients.dtype != dtype || _gradients.numel() < total)
        {
            _gradients?.Dispose();
            // Out of any caller's dispose scope: the buffer outlives the step that made it.
            _gradients = empty(total, dtype).DetachFromDisposeScope();
        }
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        var flat = _gradients.narrow(0, 0, total);
        long offset = 0;
        foreach (var parameter in trainable)
        {
            // copy_ converts dtype and device and follows the gradient's strides, so no flattened temporary is made.
            var slice = flat.narrow(0, offset, parameter.numel()).view_as(parameter);
            if (parameter.grad is { } grad) slice.copy_(grad);
            else slice.zero_();
            offset += parameter.numel();
        }
        AllReduce(flat, flat, ReduceFx.Sum);
        flat.div_(WorldSize);
        offset = 0;
        foreach (var parameter in trainable)
        {
            var count = parameter.numel();
            parameter.grad?.copy_(flat.narrow(0, offset, count).view_as(parameter));
            offset += count;
        }
    }

    /// <summary>The backward pass; the module's gradients are then due for averaging before they are clipped or stepped.</summary>
    public override void Backward(Tensor loss, LightningModule? module = null)
    {
        base.Backward(loss, module);
        if (module is not null && WorldSize > 1) _unreduced.Add(module);
    }

    /// <summary>
    /// Clips as the base does, on averaged gradients: clipping right after a manual backward pass (before the optimizer
    /// step averages them) first averages them, as Lightning's DDP does during backward.
    /// </summary>
    public override double? ClipGradients(optim.Optimizer optimizer, double clipVal, GradientClipAlgorithm algorithm)
    {
        foreach (var module in _unreduced.ToList()) ReduceGradients(module);
        return base.ClipGradients(optimizer, clipVal, algorithm);
    }

    /// <summary>Reduces a tensor over the ranks into a new tensor (mean, sum, min or max).</summary>
    public override Tensor Reduce(Tensor tensor, ReduceFx reduce)
    {
        var source = tensor.detach().cpu().contiguous();
        if (WorldSize == 1) return source.clone().to(tensor.device);
        var wide = source.dtype is ScalarType.Float64 or ScalarType.Int64 ? source : source.to(ScalarType.Float32);
        // MPI reduces from the input straight into the new tensor, so the input is not cloned first.
        var reduced = empty(wide.shape, wide.dtype);
        AllReduce(wide, reduced, reduce);
        var result = reduced.dtype == source.dtype ? reduced : reduced.to(source.dtype);
        if (reduce == ReduceFx.Mean) result = result.is_floating_point() ? result.div_(WorldSize) : result.div(WorldSize, rounding_mode: RoundingMode.floor);
        return result.to(tensor.device);
    }

    /// <summary>Reduces scalars over the ranks (the same operation for each).</summary>
    public override double[] Reduce(double[] values, ReduceFx reduce)
    {
        if (WorldSize == 1) return values.ToArray();
        var result = values.ToArray();
        unsafe
        {
            fixed (double* pointer = result) Mpi.AllReduce(pointer, pointer, result.Length, Mpi.Double, Mpi.Op(reduce), Timeout);
        }
        if (reduce == ReduceFx.Mean)
            for (int i = 0; i < result.Length; i++) result[i] /= WorldSize;
        return result;
    }

    /// <summary>Stacks every rank's tensor (same shape on all ranks) along a new first dimension, in rank order.</summary>
    public override Tensor AllGather(Tensor tensor)
    {
        var local = tensor.detach().cpu().contiguous();
        if (WorldSize == 1) return local.unsqueeze(0).clone().to(tensor.device);
        var gathered = empty([WorldSize, .. local.shape], local.dtype);
        var bytes = checked((int)(local.numel() * local.ElementSize));
        unsafe
        {
            fixed (byte* send = local.bytes)
            fixed (byte* receive = gathered.bytes)
                Mpi.AllGather(send, bytes, Mpi.Byte, receive, Timeout);
        }
        return gathered.to(tensor.device);
    }

    /// <summary>Rank <paramref name="src"/>'s tensor on every rank (same shape and dtype everywhere).</summary>
    public override Tensor Broadcast(Tensor tensor, int src = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(src);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(src, WorldSize);
        var result = tensor.detach().cpu().clone().contiguous();
        if (WorldSize > 1) BroadcastBytes(result, src);
        return result.to(tensor.device);
    }

    /// <summary>Rank 0's string on every rank (e.g. a folder chosen by rank 0 alone).</summary>
    public override string? Broadcast(string? value)
    {
        if (WorldSize == 1) return value;
        var bytes = IsGlobalZero && value is not null ? Encoding.UTF8.GetBytes(value) : [];
        long[] length = [IsGlobalZero ? (value is null ? -1 : bytes.Length) : 0];
        unsafe
        {
            fixed (long* pointer = length) Mpi.Broadcast(pointer, 1, Mpi.Long, 0, Timeout);
        }
        if (length[0] < 0) return null;
        if (!IsGlobalZero) bytes = new byte[length[0]];
        unsafe
        {
            fixed (byte* pointer = bytes) Mpi.Broadcast(pointer, bytes.Length, Mpi.Byte, 0, Timeout);
        }
        return Encoding.UTF8.GetString(bytes);
    }

    /// <inheritdoc />
    public override void Barrier()
    {
        if (WorldSize > 1) Mpi.Barrier(Timeout);
    }

    /// <summary>
    /// Sums (or min/max) a contiguous CPU tensor into another of its shape and dtype, or into itself, in buckets of
    /// <see cref="BucketElements"/>.
    /// </summary>
    private unsafe void AllReduce(Tensor send, Tensor receive, ReduceFx reduce)
    {
        var (datatype, size) = send.dtype switch
        {
            ScalarType.Float32 => (Mpi.Float, 4),
            ScalarType.Float64 => (Mpi.Double, 8),
            ScalarType.Int64 => (Mpi.Long, 8),
            _ => throw new NotSupportedException($"DDP reduces float32, float64 and int64 tensors; got {send.dtype}."),
        };
        var total = send.numel();
        fixed (byte* from = send.bytes)
        fixed (byte* to = receive.bytes)
            for (long offset = 0; offset < total; offset += BucketElements)
                Mpi.AllReduce(from + offset * size, to + offset * size, (int)Math.Min(BucketElements, total - offset), datatype, Mpi.Op(reduce), Timeout);
    }

    /// <summary>
    /// Sums <paramref name="send"/> (contiguous CPU float32 or float64: the ranks' blocks one after another, of
    /// <paramref name="counts"/> elements) over the ranks; this rank receives its block into <paramref name="receive"/>.
    /// </summary>
    internal unsafe void ReduceScatter(Tensor send, Tensor receive, int[] counts)
    {
        if (WorldSize == 1)
        {
            receive.copy_(send);
            return;
        }
        fixed (byte* from = send.bytes)
        fixed (byte* to = receive.bytes)
            Mpi.ReduceScatter(from, to, counts, Datatype(send), Mpi.Op(ReduceFx.Sum), Timeout);
    }

    /// <summary>Every rank's <paramref name="send"/> (<paramref name="counts"/>[rank] elements, contiguous CPU) placed one after another, in rank order, into <paramref name="receive"/>.</summary>
    internal unsafe void AllGatherInto(Tensor send, Tensor receive, int[] counts)
    {
        if (WorldSize == 1)
        {
            receive.copy_(send);
            return;
        }
        var displacements = new int[counts.Length];
        for (int r = 1; r < counts.Length; r++) displacements[r] = displacements[r - 1] + counts[r - 1];
        fixed (byte* from = send.bytes)
        fixed (byte* to = receive.bytes)
            Mpi.AllGatherV(from, to, counts, displacements, Datatype(send), GlobalRank, Timeout);
    }

    private static int Datatype(Tensor tensor) => tensor.dtype switch
    {
        ScalarType.Float32 => Mpi.Float,
        ScalarType.Float64 => Mpi.Double,
        _ => throw new NotSupportedException($"Sharded collectives take float32 and float64 tensors; got {tensor.dtype}."),
    };

    private unsafe void BroadcastBytes(Tensor contiguousCpu, int root)
    {
        var span = contiguousCpu.bytes;
        fixed (byte* pointer = span)
            for (int offset = 0; offset < span.Length; offset += int.MaxValue / 2)
                Mpi.Broadcast(pointer + offset, Math.Min(int.MaxValue / 2, span.Length - offset), Mpi.Byte, root, Timeout);
    }
}
