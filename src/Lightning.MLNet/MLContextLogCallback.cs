using Lightning.Callbacks;
using Microsoft.ML.Runtime;

namespace Lightning.MLNet;

/// <summary>Writes training progress to an ML.NET channel (so to <c>MLContext.Log</c>): each epoch's step count and metrics.</summary>
internal sealed class MLContextLogCallback(IChannel channel) : Callback
{
    public override void OnTrainEpochEnd(Trainer trainer, LightningModule module)
    {
        var metrics = string.Join(", ", trainer.CallbackMetrics.OrderBy(m => m.Key, StringComparer.Ordinal)
            .Select(m => FormattableString.Invariant($"{m.Key} = {m.Value:G6}")));
        Info(FormattableString.Invariant($"epoch {trainer.CurrentEpoch + 1}: step {trainer.GlobalStep}{(metrics.Length > 0 ? ", " : "")}{metrics}"));
    }

    public override void OnFitEnd(Trainer trainer, LightningModule module) =>
        Info(FormattableString.Invariant($"fit done after {trainer.GlobalStep} steps"));

    public void Info(string message) => channel.Info(MessageSensitivity.None, message);
}
