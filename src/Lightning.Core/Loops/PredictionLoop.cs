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
        module.OnPredictModelEval();
        using (no_grad())
        {
            t.CallHooks("on_predict_start", c => c.OnPredictStart(t, module), module.OnPredictStart);
            t.CallHooks("on_predict_epoch_start", c => c.OnPredictEpochStart(t, module), module.OnPredictEpochStart);
            int batchIdx = 0;
            foreach (var batch in loader)
            {
                if (limit is { } l && batchIdx >= l) break;
                using var scope = NewDisposeScope();
                var idx = batchIdx++;
                var input = t.Transfer(batch);
                t.CallHooks("on_predict_batch_start", c => c.OnPredictBatchStart(t, module, input, idx), () => module.OnPredictBatchStart(input, idx));
                Tensor prediction;
                using (t.Profile("predict_step"))
                using (t.ForwardContext())
                    prediction = module.PredictStep(input, idx);
                t.CallHooks("on_predict_batch_end", c => c.OnPredictBatchEnd(t, module, prediction, input, idx), () => module.OnPredictBatchEnd(prediction, input, idx));
                predictions.Add(prediction.MoveToOuterDisposeScope());
            }
            t.CallHooks("on_predict_epoch_end", c => c.OnPredictEpochEnd(t, module, predictions), module.OnPredictEpochEnd);
            t.CallHooks("on_predict_end", c => c.OnPredictEnd(t, module), module.OnPredictEnd);
        }
        return predictions;
    }
}
