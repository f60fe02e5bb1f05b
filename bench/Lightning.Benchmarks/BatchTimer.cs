using System.Diagnostics;
using Lightning.Callbacks;

namespace Lightning.Benchmarks;

/// <summary>Wall time from each training batch's start hook to its end hook: forward, backward and optimizer step.</summary>
internal sealed class BatchTimer : Callback
{
    private readonly Stopwatch _clock = new();

    /// <summary>One entry per training batch, in order.</summary>
    public List<double> Milliseconds { get; } = [];

    public override void OnTrainBatchStart(Trainer trainer, LightningModule module, object? batch, int batchIdx) => _clock.Restart();

    public override void OnTrainBatchEnd(Trainer trainer, LightningModule module, double? loss, object? batch, int batchIdx) =>
        Milliseconds.Add(_clock.Elapsed.TotalMilliseconds);
}
