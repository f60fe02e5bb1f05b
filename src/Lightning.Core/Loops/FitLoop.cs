using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Loops;

/// <summary>Epochs of training batches: hooks in Lightning's order, one dispose scope per step, metrics out as doubles.</summary>
internal sealed class FitLoop<TBatch>(Trainer trainer, LightningModule<TBatch> module, IEnumerable<TBatch> loader)
{
    private readonly optim.Optimizer? _optimizer = trainer.Optimizers.Count switch
    {
        0 => null,
        1 => trainer.Optimizers[0],
        var n => throw new NotSupportedException(
            $"ConfigureOptimizers returned {n} optimizers; automatic optimization trains with one."),
    };

    public void Run()
    {
        trainer.ForEachCallback(c => c.OnTrainStart(trainer, module));
        module.OnTrainStart();
        var maxEpochs = trainer.Options.MaxEpochs;
        for (; (maxEpochs == -1 || trainer.CurrentEpoch < maxEpochs) && !trainer.ShouldStop; trainer.CurrentEpoch++)
            RunEpoch();
        // CurrentEpoch ends on the last epoch run, as Lightning reports it.
        if (trainer.CurrentEpoch > 0) trainer.CurrentEpoch--;
        trainer.ForEachCallback(c => c.OnTrainEnd(trainer, module));
        module.OnTrainEnd();
    }

    private void RunEpoch()
    {
        module.train();
        trainer.EpochBatchesDone = 0;
        trainer.ForEachCallback(c => c.OnTrainEpochStart(trainer, module));
        module.OnTrainEpochStart();

        var limit = trainer.NumTrainingBatches;
        int batchIdx = 0;
        foreach (var batch in loader)
        {
            if (limit is { } l && batchIdx >= l) break;
            RunStep(batch, batchIdx);
            trainer.EpochBatchesDone = ++batchIdx;
            if (trainer.ShouldStop) break;
        }

        trainer.ForEachCallback(c => { if (!c.IsCheckpoint) c.OnTrainEpochEnd(trainer, module); });
        module.OnTrainEpochEnd();
        trainer.Metrics.EndEpoch(trainer.Loggers, trainer.CurrentEpoch, Math.Max(trainer.GlobalStep - 1, 0));
        trainer.ForEachCallback(c => { if (c.IsCheckpoint) c.OnTrainEpochEnd(trainer, module); });
    }

    private void RunStep(TBatch batch, int batchIdx)
    {
        using var scope = torch.NewDisposeScope();
        trainer.ForEachCallback(c => c.OnTrainBatchStart(trainer, module, batch, batchIdx));
        module.OnTrainBatchStart(batch, batchIdx);

        trainer.Metrics.BeginTrainingStep();
        var loss = module.TrainingStep(batch, batchIdx);
        double? lossValue = null;
        var stepIndex = trainer.GlobalStep;
        if (loss is not null && _optimizer is not null)
        {
            _optimizer.zero_grad();
            module.Backward(loss);
            _optimizer.step();
            trainer.GlobalStep++;
            lossValue = loss.ToDouble();
        }
        else if (loss is not null) lossValue = loss.ToDouble();
        trainer.LastTrainLoss = lossValue ?? trainer.LastTrainLoss;
        // Lightning logs on steps 49, 99, ... with the default LogEveryNSteps = 50.
        var due = (stepIndex + 1) % trainer.Options.LogEveryNSteps == 0;
        trainer.Metrics.EndTrainingStep(trainer.Loggers, trainer.CurrentEpoch, stepIndex, due);

        trainer.ForEachCallback(c => c.OnTrainBatchEnd(trainer, module, lossValue, batch, batchIdx));
        module.OnTrainBatchEnd(lossValue, batch, batchIdx);
    }
}
