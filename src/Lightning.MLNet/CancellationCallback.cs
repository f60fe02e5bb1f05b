using Lightning.Callbacks;

namespace Lightning.MLNet;

/// <summary>Stops a fit at the next batch once the token is cancelled, as ML.NET's trainers do with <c>CheckAlive</c>.</summary>
internal sealed class CancellationCallback(CancellationToken token) : Callback
{
    public override void OnTrainBatchStart(Trainer trainer, LightningModule module, object? batch, int batchIdx) =>
        token.ThrowIfCancellationRequested();

    public override void OnValidationBatchStart(Trainer trainer, LightningModule module, object? batch, int batchIdx) =>
        token.ThrowIfCancellationRequested();
}
