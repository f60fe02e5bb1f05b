using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Lightning.Callbacks;

/// <summary>
/// Stops training once <see cref="Duration"/> of training time has passed, checked after every batch and epoch, as
/// Lightning's <c>Timer</c>. Elapsed time is saved in checkpoints, so a resumed run counts what it already used.
/// <see cref="TrainerOptions.MaxTime"/> adds one.
/// </summary>
public sealed class Timer : Callback
{
    private readonly Stopwatch _clock = new();
    private TimeSpan _before;

    /// <summary>Stops training after <paramref name="duration"/>.</summary>
    public Timer(TimeSpan duration)
    {
        if (duration <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(duration), duration, $"duration = {duration} is not allowed: it must be positive.");
        Duration = duration;
    }

    /// <summary>The training time allowed.</summary>
    public TimeSpan Duration { get; }

    /// <summary>Training time used so far, including time from before a resume.</summary>
    public TimeSpan Elapsed => _before + _clock.Elapsed;

    /// <summary>Training time left.</summary>
    public TimeSpan Remaining => Duration > Elapsed ? Duration - Elapsed : TimeSpan.Zero;

    /// <inheritdoc />
    public override void OnTrainStart(Trainer trainer, LightningModule module) => _clock.Restart();

    /// <inheritdoc />
    public override void OnTrainEnd(Trainer trainer, LightningModule module) => _clock.Stop();

    /// <inheritdoc />
    public override void OnTrainBatchEnd(Trainer trainer, LightningModule module, double? loss, object? batch, int batchIdx) => Check(trainer);

    /// <inheritdoc />
    public override void OnTrainEpochEnd(Trainer trainer, LightningModule module) => Check(trainer);

    /// <inheritdoc />
    public override JsonObject SaveState() => new() { ["elapsed_seconds"] = Elapsed.TotalSeconds };

    /// <inheritdoc />
    public override void LoadState(JsonObject state) => _before = TimeSpan.FromSeconds((double?)state["elapsed_seconds"] ?? 0);

    private void Check(Trainer trainer)
    {
        if (Elapsed >= Duration) trainer.ShouldStop = true;
    }
}
