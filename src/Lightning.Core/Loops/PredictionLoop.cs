using static TorchSharp.torch;

namespace Lightning.Loops;

/// <summary>One pass over the prediction loader in eval mode without gradients; predictions leave their step's scope.</summary>
internal sealed class PredictionLoop<TBatch>(Trainer trainer, LightningModule<TBatch> module)
{
    public IReadOnlyList<Tensor> Run(IEnumerable<TBatch> loader)
    {
        var t = trainer;
        var limit = t.Limits.Predict.Resolve(DataLoaderLength.Of(loader), nameof(TrainerOptions.LimitPredictBatches));
        var predictions = new List<Tensor>();
        t.Hooks.Call(Hooks.OnPredictModelEval, module);
        using (no_grad())
        {
            t.Hooks.Call(Hooks.OnPredictStart, module);
            t.Hooks.Call(Hooks.OnPredictEpochStart, module);
            int batchIdx = 0;
            foreach (var batch in loader)
            {
                if (limit is { } l && batchIdx >= l) break;
                using var scope = NewDisposeScope();
                var idx = batchIdx++;
                var input = t.Strategy.BatchToDevice(batch);
                t.Hooks.Call(Hooks<TBatch>.OnPredictBatchStart, module, (input, idx));
                var prediction = t.Hooks.Call(Hooks<TBatch>.PredictStep, module, (input, idx))!;
                t.Hooks.Call(Hooks<TBatch>.OnPredictBatchEnd, module, (prediction, input, idx));
                predictions.Add(prediction.MoveToOuterDisposeScope());
                t.ThrowIfInterrupted();
            }
            t.Hooks.Call(Hooks.OnPredictEpochEnd, module, predictions);
            t.Hooks.Call(Hooks.OnPredictEnd, module);
        }
        return predictions;
    }
}
