using System.Diagnostics;
using System.Globalization;

namespace Lightning.Callbacks;

/// <summary>
/// A one-line console progress bar: epoch, batch i/N, elapsed and remaining time, it/s and the loss. The trainer adds
/// one unless <see cref="TrainerOptions.EnableProgressBar"/> is false; it draws nothing when output is redirected.
/// </summary>
public sealed class ProgressBar : Callback
{
    private readonly TextWriter? _output;
    private readonly TimeSpan _refresh;
    private readonly Stopwatch _epochClock = new();
    private TimeSpan _lastDraw;
    private int _lastWidth;

    /// <summary>Draws on the console, at most every <paramref name="refreshSeconds"/> seconds.</summary>
    public ProgressBar(double refreshSeconds = 0.1) : this(Console.IsOutputRedirected ? null : Console.Out, refreshSeconds) { }

    /// <summary>Draws on <paramref name="output"/> (null: draws nothing), at most every <paramref name="refreshSeconds"/> seconds.</summary>
    public ProgressBar(TextWriter? output, double refreshSeconds = 0.1)
    {
        if (refreshSeconds < 0 || double.IsNaN(refreshSeconds))
            throw new ArgumentOutOfRangeException(nameof(refreshSeconds), refreshSeconds,
                $"refreshSeconds = {refreshSeconds} is not allowed: it must be 0 or more.");
        _output = output;
        _refresh = TimeSpan.FromSeconds(refreshSeconds);
    }

    /// <inheritdoc />
    public override void OnTrainEpochStart(Trainer trainer, LightningModule module)
    {
        _epochClock.Restart();
        _lastDraw = TimeSpan.Zero;
    }

    /// <inheritdoc />
    public override void OnTrainBatchEnd(Trainer trainer, LightningModule module, double? loss, object? batch, int batchIdx)
    {
        if (_output is null || _epochClock.Elapsed - _lastDraw < _refresh) return;
        _lastDraw = _epochClock.Elapsed;
        Draw(trainer, batchIdx + 1, loss, final: false);
    }

    /// <inheritdoc />
    public override void OnTrainEpochEnd(Trainer trainer, LightningModule module)
    {
        if (_output is null) return;
        Draw(trainer, trainer.EpochBatchesDone, trainer.LastTrainLoss, final: true);
    }

    private void Draw(Trainer trainer, int done, double? loss, bool final)
    {
        var elapsed = _epochClock.Elapsed;
        var rate = elapsed.TotalSeconds > 0 ? done / elapsed.TotalSeconds : 0;
        var total = trainer.NumTrainingBatches;
        var remaining = total is { } n && rate > 0 ? TimeSpan.FromSeconds((n - done) / rate) : (TimeSpan?)null;
        var line = Render(trainer.CurrentEpoch, done, total, elapsed, remaining, rate, loss, trainer.ProgressBarMetrics);
        // Pad to the previous width so a shorter line leaves no stale characters behind.
        var padded = line.PadRight(_lastWidth);
        _lastWidth = final ? 0 : line.Length;
        _output!.Write(final ? $"\r{padded}{Environment.NewLine}" : $"\r{padded}");
        _output.Flush();
    }

    internal static string Render(int epoch, int done, int? total, TimeSpan elapsed, TimeSpan? remaining, double rate,
        double? loss, IReadOnlyDictionary<string, double> metrics)
    {
        var inv = CultureInfo.InvariantCulture;
        const int width = 20;
        var bar = total is > 0 ? new string('█', done * width / total.Value).PadRight(width, '░') : "";
        var counts = total is { } t ? $"{done}/{t}" : $"{done}";
        var eta = remaining is { } r ? Clock(r) : "?";
        var parts = new List<string> { $"{rate.ToString("0.00", inv)}it/s" };
        if (loss is { } l) parts.Add($"loss={l.ToString("0.####", inv)}");
        parts.AddRange(metrics.Select(m => $"{m.Key}={m.Value.ToString("0.####", inv)}"));
        return $"Epoch {epoch}: {bar} {counts} [{Clock(elapsed)}<{eta}, {string.Join(", ", parts)}]";
    }

    private static string Clock(TimeSpan time) =>
        time.TotalHours >= 1 ? time.ToString(@"h\:mm\:ss", CultureInfo.InvariantCulture) : time.ToString(@"mm\:ss", CultureInfo.InvariantCulture);
}
