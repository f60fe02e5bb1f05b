using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;
using Lightning.Checkpoints;
using Lightning.Precision;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Strategies;

/// <summary>
/// Strategy "ddp_sharded" (also "zero_stage_2" and "deepspeed_stage_2"): ZeRO stage 2 on MPI, our implementation, not
/// DeepSpeed. Processes start and data is sharded as under "ddp"; at each optimizer step the gradients are
/// reduce-scattered in buckets so each rank receives the mean of its shard only, each rank keeps optimizer state for its
/// shard of the parameters and steps that shard alone, and the updated parameters are all-gathered. Per rank this keeps
/// the parameters and the step's gradients whole and 1/N of the optimizer state (for Adam, 2/N of the parameters' size
/// instead of 2), and no flattened copy of the gradients.
/// </summary>
/// <remarks>
/// The optimizer the module configures is rebuilt over the rank's pieces through its constructor taking parameter
/// groups, sharing the groups' options, so learning rate schedulers keep working; its own state is then released. Any
/// TorchSharp optimizer whose update is elementwise works (all built-ins but LBFGS). Clipping by norm is computed across
/// the shards. Checkpoints keep the whole weights (written by rank 0) and each rank's optimizer shard in a folder beside
/// the file (<c>name.ckpt.shards/</c>), written by every rank at once; resuming reads any number of shards into any world
/// size, and <see cref="LightningModule.LoadFromCheckpoint{T}"/> needs only the file. Gradients of parameters no optimizer
/// holds are not averaged.
/// </remarks>
public sealed class DdpShardedStrategy : DdpStrategy
{
    private readonly ConditionalWeakTable<optim.Optimizer, ShardedOptimizer> _shards = new();
    private long _backwardPasses;

    /// <summary>A "ddp_sharded" strategy whose collectives wait <paramref name="timeout"/> for the other processes (default 30 minutes).</summary>
    public DdpShardedStrategy(TimeSpan? timeout = null) : base(timeout) { }

    internal override string Name => "ddp_sharded";

    /// <summary>Elements per reduce-scatter and all-gather bucket; tests make it small so collectives span many buckets and shards start inside parameters.</summary>
    internal int ShardBucketElements { get; init; } = BucketElements;

    /// <inheritdoc />
    protected internal override void SetupEnvironment()
    {
        base.SetupEnvironment();
        // Each rank sees only its shard of the gradients: a step skipped on overflow must be skipped by every rank.
        Precision.AgreeOnOverflow(ReduceBooleanDecision);
    }

    /// <summary>Nothing here: each optimizer step (or clipping before it) reduce-scatters the gradients of that optimizer's parameters.</summary>
    public override void ReduceGradients(nn.Module module) => ArgumentNullException.ThrowIfNull(module);

    /// <summary>The backward pass; every optimizer's gradients are then due for reduce-scattering.</summary>
    public override void Backward(Tensor loss, LightningModule? module = null)
    {
        base.Backward(loss, module);
        _backwardPasses++;
    }

    /// <summary>
    /// Reduce-scatters the gradients after <paramref name="closure"/> (or at once without one), steps this rank's shard
    /// through the precision plugin, and all-gathers the updated parameters.
    /// </summary>
    public override OptimizerStepOutcome OptimizerStep(optim.Optimizer optimizer, Func<Tensor?>? closure, Action? beforeStep)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        var shard = Shard(optimizer);
        Func<Tensor?>? reducing = null;
        if (closure is null) Reduced(shard);
        else reducing = () =>
        {
            var loss = closure();
            if (loss is not null) Reduced(shard);
            return loss;
        };
        var outcome = Precision.OptimizerStep(shard.Optimizer, reducing, beforeStep);
        if (outcome == OptimizerStepOutcome.Stepped) shard.AllGatherParameters();
        return outcome;
    }

    /// <summary>Clips this rank's shard of the gradients; by norm, the norm is that of all shards together.</summary>
    public override double? ClipGradients(optim.Optimizer optimizer, double clipVal, GradientClipAlgorithm algorithm)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        if (clipVal <= 0 || double.IsNaN(clipVal))
            throw new ArgumentOutOfRangeException(nameof(clipVal), clipVal, $"clipVal = {clipVal} is not allowed: it must be greater than 0.");
        var shard = Reduced(Shard(optimizer));
        Precision.UnscaleGradients(shard.Optimizer);
        if (algorithm == GradientClipAlgorithm.Norm) return shard.ClipByNorm(clipVal);
        shard.ClipByValue(clipVal);
        return null;
    }

    internal override bool ShardsOptimizerState => true;

    /// <summary>Every rank writes its optimizer shards beside the checkpoint; rank 0's file then names them.</summary>
    internal override void WriteShards(Checkpoint checkpoint, string path)
    {
        if (checkpoint.ShardedOptimizers.Count == 0) return;
        checkpoint.OptimizerShards = WriteOptimizerShards(path, checkpoint.GlobalStep, checkpoint.ShardedOptimizers);
    }

    /// <summary>
    /// Every rank writes its shards of <paramref name="optimizers"/> beside <paramref name="path"/>; returns the manifest
    /// that the file written next (by rank 0) must hold, which is what makes the shards part of a checkpoint.
    /// </summary>
    internal JsonObject WriteOptimizerShards(string path, long step, IReadOnlyList<optim.Optimizer> optimizers)
    {
        // Rank 0 names the save, so every rank writes into the same new folder.
        var id = Broadcast(IsGlobalZero ? OptimizerShardFiles.NewId(step) : null)!;
        OptimizerShardFiles.Write(path, id, optimizers.Select(Shard).ToList(), GlobalRank, WorldSize);
        Barrier();
        return OptimizerShardFiles.Manifest(path, id, WorldSize);
    }

    /// <summary>State was loaded into these optimizers: their shards are rebuilt from it at their next step.</summary>
    internal override void OptimizerStateLoaded(IEnumerable<optim.Optimizer> optimizers)
    {
        foreach (var optimizer in optimizers) _shards.Remove(optimizer);
    }

    /// <summary>The optimizer that steps this rank's shard of <paramref name="optimizer"/>.</summary>
    internal optim.Optimizer SteppingOptimizer(optim.Optimizer optimizer) => Shard(optimizer).Optimizer;

    /// <summary><paramref name="shard"/> with its gradients reduce-scattered since the last backward pass.</summary>
    private ShardedOptimizer Reduced(ShardedOptimizer shard)
    {
        if (shard.ReducedAfter != _backwardPasses)
        {
            shard.ReduceScatterGradients();
            shard.ReducedAfter = _backwardPasses;
        }
        return shard;
    }

    /// <summary>The shard of <paramref name="optimizer"/>, built at its first use (after any checkpoint was restored into it).</summary>
    private ShardedOptimizer Shard(optim.Optimizer optimizer) =>
        _shards.GetValue(optimizer, o => new ShardedOptimizer(o, this, ShardBucketElements));
}
