using static TorchSharp.torch;

namespace Lightning.Loops;

/// <summary>A validation or test epoch: eval mode, no gradients, the stage's hooks in Lightning's order, epoch metrics reduced and logged.</summary>
internal sealed class EvaluationLoop<TBatch>(Trainer trainer, LightningModule<TBatch> module, EvaluationHooks<TBatch> hooks)
{
    public Dictionary<string, double> Run(IEnumerable<TBatch> loader, bool sanity, int? limit = null)
    {
        var t = trainer;
        limit ??= hooks.Limit(t.Limits).Resolve(DataLoaderLength.Of(loader), hooks.LimitOption);
        t.Hooks.Call(hooks.ModelEval, module);
        using (no_grad())
        {
            t.Hooks.Call(hooks.Start, module);
            t.Hooks.Call(hooks.EpochStart, module);
            int batchIdx = 0;
            foreach (var batch in loader)
            {
                if (limit is { } l && batchIdx >= l) break;
                RunBatch(batch, batchIdx++);
                t.ThrowIfInterrupted();
            }
            t.Metrics.PublishEpochValues();
            t.Hooks.Call(hooks.EpochEnd, module);
            var metrics = t.Metrics.EndEpoch(t.Loggers, t.CurrentEpoch, Math.Max(t.GlobalStep - 1, 0), !sanity && !t.Limits.LoggingOff);
            t.Hooks.Call(hooks.End, module);
            t.Hooks.Call(hooks.ModelTrain, module);
            return metrics;
        }
    }

    private void RunBatch(TBatch batch, int batchIdx)
    {
        var t = trainer;
        using var scope = NewDisposeScope();
        batch = t.Strategy.BatchToDevice(batch);
        t.Metrics.BatchSizeOfCurrentBatch = () => BatchSize.Of(batch);
        t.Hooks.Call(hooks.BatchStart, module, (batch, batchIdx));
        t.Hooks.Call(hooks.Step, module, (batch, batchIdx));
        t.Hooks.Call(hooks.BatchEnd, module, (batch, batchIdx));
        t.Metrics.BatchSizeOfCurrentBatch = null;
    }
}
