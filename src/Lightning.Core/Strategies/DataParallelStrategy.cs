using TorchSharp;
using Lightning.Loops;
using static TorchSharp.torch;

namespace Lightning.Strategies;

/// <summary>
/// Strategy "dp": one process, each training batch split across replicas whose training steps run in parallel, one
/// backward pass and one optimizer step (Lightning's <c>DataParallelStrategy</c>). The replicas share the module's weights
/// on the CPU, so no broadcast is needed after a step.
/// </summary>
public sealed class DataParallelStrategy : Strategy
{
    /// <summary>How many replicas share each batch.</summary>
    public int Replicas => ParallelDevices.Count;

    /// <inheritdoc />
    protected internal override void CheckDevices()
    {
        // CPU replicas share one set of weights in memory, so a single module serves them all; CUDA replicas would
        // need a copy of the module per device, which TorchSharp cannot make of an arbitrary module.
        if (Accelerator.DeviceType != DeviceType.CPU && Replicas > 1)
            throw new ArgumentException(
                $"Strategy = \"dp\" with Devices = {RequestedDevices} asks for {Replicas} CUDA devices; data parallel runs on CPU replicas only. " +
                "Use Strategy = \"ddp\" (or \"auto\", which picks it) for one process per GPU, or one CUDA device.", "Devices");
    }

    /// <inheritdoc />
    public override void Setup(Trainer trainer)
    {
        ArgumentNullException.ThrowIfNull(trainer);
        if (trainer.State == Stage.Fit && Replicas > 1 && trainer.LightningModule is { AutomaticOptimization: false })
            throw new NotSupportedException(
                "Strategy \"dp\" splits each batch across replicas inside automatic optimization; with AutomaticOptimization = false use one device.");
        base.Setup(trainer);
    }

    /// <summary>
    /// Each replica runs the training step on its chunk of the batch on its own thread (with its own dispose scope and
    /// autocast state, both per thread); the losses are gathered into the share-weighted mean, whose gradient is the
    /// full batch's. Logged values are reduced the same way.
    /// </summary>
    public override Tensor? TrainingStep<TBatch>(LightningModule<TBatch> module, TBatch batch, int batchIdx)
    {
        ArgumentNullException.ThrowIfNull(module);
        if (Replicas == 1) return base.TrainingStep(module, batch, batchIdx);
        var chunks = BatchSplit.Split(batch, Replicas);
        var losses = new Tensor?[chunks.Count];
        var logs = new List<LoggedMetric>[chunks.Count];
        Parallel.For(0, chunks.Count, new ParallelOptions { MaxDegreeOfParallelism = chunks.Count }, r =>
        {
            using var scope = NewDisposeScope();
            logs[r] = MetricsConnector.CaptureOnThisThread(() =>
            {
                using (Precision.ForwardContext()) losses[r] = module.TrainingStep(chunks[r].Chunk, batchIdx)?.DetachFromDisposeScope();
            });
        });
        RecordShareWeightedMeans(module, logs, chunks.Select(c => c.Share).ToArray());
        if (losses.Any(l => l is null))
        {
            foreach (var l in losses) l?.Dispose();
            return null;
        }
        var gathered = losses.Select((l, r) => l! * chunks[r].Share).Aggregate((a, b) => a + b);
        foreach (var l in losses) l!.Dispose();
        return gathered;
    }

    /// <summary>Records each metric once, as the share-weighted mean of the replicas' values (Lightning's dp reduction).</summary>
    private static void RecordShareWeightedMeans(LightningModule module, List<LoggedMetric>[] logs, double[] shares)
    {
        if (module.Trainer is not { } trainer) return;
        foreach (var group in logs.SelectMany((l, r) => l.Select(metric => (Metric: metric, Share: shares[r]))).GroupBy(x => x.Metric.Name))
        {
            var value = group.Sum(x => x.Metric.Value * x.Share) / group.Sum(x => x.Share);
            trainer.Metrics.Record(group.First().Metric with { Value = value });
        }
    }
}
