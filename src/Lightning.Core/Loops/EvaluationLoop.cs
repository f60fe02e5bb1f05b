using static TorchSharp.torch;

namespace Lightning.Loops;

/// <summary>A validation or test epoch: eval mode, no gradients, stage hooks in Lightning's order, epoch metrics reduced and logged.</summary>
internal sealed class EvaluationLoop<TBatch>(Trainer trainer, LightningModule<TBatch> module, Stage stage)
{
    private bool Validating => stage == Stage.Validate;

    public Dictionary<string, double> Run(IEnumerable<TBatch> loader, bool sanity, int? limit = null)
    {
        var t = trainer;
        var name = Validating ? "validation" : "test";
        limit ??= (Validating ? t.Limits.Val : t.Limits.Test).Resolve(DataLoaderLength.Of(loader),
            Validating ? nameof(TrainerOptions.LimitValBatches) : nameof(TrainerOptions.LimitTestBatches));
        var outerContext = t.Metrics.Context;

        if (Validating) module.OnValidationModelEval(); else module.OnTestModelEval();
        using (no_grad())
        {
            t.Metrics.Context = HookContext.EvaluationEpoch;
            t.Metrics.Hook = $"on_{name}_start";
            if (Validating) t.CallHooks("on_validation_start", c => c.OnValidationStart(t, module), module.OnValidationStart);
            else t.CallHooks("on_test_start", c => c.OnTestStart(t, module), module.OnTestStart);
            if (Validating) t.CallHooks("on_validation_epoch_start", c => c.OnValidationEpochStart(t, module), module.OnValidationEpochStart);
            else t.CallHooks("on_test_epoch_start", c => c.OnTestEpochStart(t, module), module.OnTestEpochStart);

            int batchIdx = 0;
            foreach (var batch in loader)
            {
                if (limit is { } l && batchIdx >= l) break;
                RunBatch(batch, batchIdx++);
            }

            t.Metrics.Context = HookContext.EvaluationEpoch;
            t.Metrics.Hook = $"on_{name}_epoch_end";
            t.Metrics.PublishEpochValues();
            if (Validating) t.CallHooks("on_validation_epoch_end", c => c.OnValidationEpochEnd(t, module), module.OnValidationEpochEnd);
            else t.CallHooks("on_test_epoch_end", c => c.OnTestEpochEnd(t, module), module.OnTestEpochEnd);
            var metrics = t.Metrics.EndEpoch(t.Loggers, t.CurrentEpoch, Math.Max(t.GlobalStep - 1, 0), !sanity && !t.Limits.LoggingOff);
            if (Validating) t.CallHooks("on_validation_end", c => c.OnValidationEnd(t, module), module.OnValidationEnd);
            else t.CallHooks("on_test_end", c => c.OnTestEnd(t, module), module.OnTestEnd);
            t.Metrics.Context = outerContext;
            if (Validating) module.OnValidationModelTrain(); else module.OnTestModelTrain();
            return metrics;
        }
    }

    private void RunBatch(TBatch batch, int batchIdx)
    {
        var t = trainer;
        using var scope = NewDisposeScope();
        batch = t.Transfer(batch);
        t.Metrics.Context = HookContext.EvaluationStep;
        t.Metrics.Hook = Validating ? "validation_step" : "test_step";
        t.Metrics.BatchSizeOfCurrentBatch = () => BatchSize.Of(batch);
        if (Validating)
        {
            t.CallHooks("on_validation_batch_start", c => c.OnValidationBatchStart(t, module, batch, batchIdx), () => module.OnValidationBatchStart(batch, batchIdx));
            using (t.Profile("validation_step"))
            using (t.ForwardContext())
                module.ValidationStep(batch, batchIdx);
            t.CallHooks("on_validation_batch_end", c => c.OnValidationBatchEnd(t, module, batch, batchIdx), () => module.OnValidationBatchEnd(batch, batchIdx));
        }
        else
        {
            t.CallHooks("on_test_batch_start", c => c.OnTestBatchStart(t, module, batch, batchIdx), () => module.OnTestBatchStart(batch, batchIdx));
            using (t.Profile("test_step"))
            using (t.ForwardContext())
                module.TestStep(batch, batchIdx);
            t.CallHooks("on_test_batch_end", c => c.OnTestBatchEnd(t, module, batch, batchIdx), () => module.OnTestBatchEnd(batch, batchIdx));
        }
        t.Metrics.BatchSizeOfCurrentBatch = null;
    }
}
