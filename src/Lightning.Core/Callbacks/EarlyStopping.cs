using System.Globalization;
using System.Text.Json.Nodes;

namespace Lightning.Callbacks;

/// <summary>
/// Stops training when a monitored metric stops improving, as Lightning's <c>EarlyStopping</c>: after
/// <see cref="Patience"/> checks without an improvement of more than <see cref="MinDelta"/>, when the metric reaches
/// <see cref="StoppingThreshold"/>, when it gets worse than <see cref="DivergenceThreshold"/>, or when it is not finite.
/// </summary>
/// <remarks>
/// <para>
/// It reads <see cref="Trainer.CallbackMetrics"/> and writes only <see cref="Trainer.ShouldStop"/>; the trainer still
/// runs until <c>MinEpochs</c>/<c>MinSteps</c> are reached. Patience counts checks, not epochs: by default one check at
/// the end of every training epoch (after its validation); when validation runs inside epochs or every few epochs,
/// one check after each validation run (<see cref="CheckOnTrainEpochEnd"/> overrides this). No check happens during the
/// sanity check, outside a fit, or with <c>FastDevRun</c>.
/// </para>
/// <para>Its counters and best score travel in checkpoints under <see cref="StateKey"/>, so a resumed fit keeps its patience.</para>
/// </remarks>
/// <example><code>
/// var trainer = new Trainer(new TrainerOptions { Callbacks = [new EarlyStopping("val_loss", patience: 5, minDelta: 1e-3)] });
/// </code></example>
public sealed class EarlyStopping : Callback
{
    private bool _warnedMissing;
    private bool _validationSeen;

    /// <summary>Watches <paramref name="monitor"/>; every other argument has Lightning's default.</summary>
    /// <param name="monitor">The metric to watch, as logged (e.g. <c>val_loss</c>).</param>
    /// <param name="minDelta">The least change that counts as an improvement (0 or more).</param>
    /// <param name="patience">Checks without improvement after which training stops (0 or more).</param>
    /// <param name="verbose">Print why the metric improved or training stops.</param>
    /// <param name="mode"><c>"min"</c> when lower is better, <c>"max"</c> when higher is.</param>
    /// <param name="strict">Fail when the metric is missing at a check (else warn once and skip the check).</param>
    /// <param name="checkFinite">Stop when the metric becomes NaN or infinite.</param>
    /// <param name="stoppingThreshold">Stop as soon as the metric is better than this.</param>
    /// <param name="divergenceThreshold">Stop as soon as the metric is worse than this.</param>
    /// <param name="checkOnTrainEpochEnd">Check at training-epoch ends (true) or validation ends (false); null decides from the trainer.</param>
    public EarlyStopping(
        string monitor,
        double minDelta = 0.0,
        int patience = 3,
        bool verbose = false,
        string mode = "min",
        bool strict = true,
        bool checkFinite = true,
        double? stoppingThreshold = null,
        double? divergenceThreshold = null,
        bool? checkOnTrainEpochEnd = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(monitor);
        ArgumentNullException.ThrowIfNull(mode);
        if (mode is not ("min" or "max"))
            throw new ArgumentOutOfRangeException(nameof(mode), mode, $"mode = \"{mode}\" is not allowed: it must be one of \"min\", \"max\".");
        if (!(minDelta >= 0) || double.IsInfinity(minDelta))
            throw new ArgumentOutOfRangeException(nameof(minDelta), minDelta, $"minDelta = {minDelta} is not allowed: it must be a finite number, 0 or more.");
        if (patience < 0)
            throw new ArgumentOutOfRangeException(nameof(patience), patience, $"patience = {patience} is not allowed: it must be 0 or more.");
        if (stoppingThreshold is { } stop && double.IsNaN(stop))
            throw new ArgumentOutOfRangeException(nameof(stoppingThreshold), stop, "stoppingThreshold = NaN is not allowed: it must be a number, or null for none.");
        if (divergenceThreshold is { } diverge && double.IsNaN(diverge))
            throw new ArgumentOutOfRangeException(nameof(divergenceThreshold), diverge, "divergenceThreshold = NaN is not allowed: it must be a number, or null for none.");

        Monitor = monitor;
        MinDelta = minDelta;
        Patience = patience;
        Verbose = verbose;
        Mode = mode;
        Strict = strict;
        CheckFinite = checkFinite;
        StoppingThreshold = stoppingThreshold;
        DivergenceThreshold = divergenceThreshold;
        CheckOnTrainEpochEnd = checkOnTrainEpochEnd;
        BestScore = mode == "min" ? double.PositiveInfinity : double.NegativeInfinity;
    }

    /// <summary>The watched metric.</summary>
    public string Monitor { get; }

    /// <summary>The least change that counts as an improvement.</summary>
    public double MinDelta { get; }

    /// <summary>Checks without improvement after which training stops (restored from checkpoints).</summary>
    public int Patience { get; private set; }

    /// <summary>Whether decisions are printed.</summary>
    public bool Verbose { get; }

    /// <summary><c>"min"</c> or <c>"max"</c>.</summary>
    public string Mode { get; }

    /// <summary>Whether a missing metric is an error.</summary>
    public bool Strict { get; }

    /// <summary>Whether a NaN or infinite value stops training.</summary>
    public bool CheckFinite { get; }

    /// <summary>Stop once the metric is better than this.</summary>
    public double? StoppingThreshold { get; }

    /// <summary>Stop once the metric is worse than this.</summary>
    public double? DivergenceThreshold { get; }

    /// <summary>Check at training-epoch ends (true) or validation ends (false); null lets the trainer's flags decide.</summary>
    public bool? CheckOnTrainEpochEnd { get; }

    /// <summary>Checks since the last improvement.</summary>
    public int WaitCount { get; private set; }

    /// <summary>The epoch in which this callback asked training to stop; 0 while it has not.</summary>
    public int StoppedEpoch { get; private set; }

    /// <summary>The best value seen (infinitely bad before the first check).</summary>
    public double BestScore { get; private set; }

    /// <summary>Why this callback asked training to stop; null while it has not.</summary>
    public string? StoppingReason { get; private set; }

    /// <summary>Includes the monitor and mode, so several early-stopping callbacks can keep their state in one checkpoint.</summary>
    public override string StateKey => $"EarlyStopping{{'monitor': '{Monitor}', 'mode': '{Mode}'}}";

    /// <inheritdoc />
    public override bool RunsLast => true;

    /// <inheritdoc />
    public override void Setup(Trainer trainer, LightningModule module, Stage stage)
    {
        if (stage == Stage.Fit) _validationSeen = false;
    }

    /// <inheritdoc />
    public override void OnValidationStart(Trainer trainer, LightningModule module)
    {
        if (trainer.State == Stage.Fit) _validationSeen = true;
    }

    /// <inheritdoc />
    public override void OnTrainEpochEnd(Trainer trainer, LightningModule module)
    {
        if (!ChecksOnTrainEpochEnd(trainer) || SkipCheck(trainer)) return;
        RunCheck(trainer);
    }

    /// <inheritdoc />
    public override void OnValidationEnd(Trainer trainer, LightningModule module)
    {
        if (ChecksOnTrainEpochEnd(trainer) || SkipCheck(trainer)) return;
        RunCheck(trainer);
    }

    /// <inheritdoc />
    public override JsonObject SaveState() => new()
    {
        ["wait_count"] = WaitCount,
        ["stopped_epoch"] = StoppedEpoch,
        ["best_score"] = Score(BestScore),
        ["patience"] = Patience,
    };

    /// <inheritdoc />
    public override void LoadState(JsonObject state)
    {
        ArgumentNullException.ThrowIfNull(state);
        WaitCount = (int?)state["wait_count"] ?? WaitCount;
        StoppedEpoch = (int?)state["stopped_epoch"] ?? StoppedEpoch;
        BestScore = ReadScore(state["best_score"]) ?? BestScore;
        Patience = (int?)state["patience"] ?? Patience;
    }

    private static bool SkipCheck(Trainer trainer) =>
        trainer.State != Stage.Fit || trainer.SanityChecking || trainer.Options.FastDevRun > 0;

    /// <summary>Lightning's default: at epoch ends when validation runs once at the end of every epoch (or not at all), else after each validation.</summary>
    private bool ChecksOnTrainEpochEnd(Trainer trainer)
    {
        if (CheckOnTrainEpochEnd is { } explicitChoice) return explicitChoice;
        bool hasValidation = trainer.NumValBatches is > 0 || (trainer.NumValBatches is null && _validationSeen);
        if (!hasValidation) return true;
        return trainer.Options.ValCheckInterval == BatchLimit.All && trainer.Options.CheckValEveryNEpoch == 1;
    }

    private void RunCheck(Trainer trainer)
    {
        if (!trainer.CallbackMetrics.TryGetValue(Monitor, out var current))
        {
            var message =
                $"Early stopping conditioned on metric '{Monitor}', which is not available. Pass in or modify your EarlyStopping " +
                $"callback to use any of the following: [{string.Join(", ", trainer.CallbackMetrics.Keys.Order(StringComparer.Ordinal))}].";
            if (Strict) throw new InvalidOperationException(message + " (Or set strict: false to skip checks while it is missing.)");
            if (!_warnedMissing) Console.Error.WriteLine($"Warning: {message}");
            _warnedMissing = true;
            return;
        }

        var (stop, reason) = Evaluate(current);
        trainer.ShouldStop = trainer.ShouldStop || stop;
        if (stop)
        {
            StoppedEpoch = trainer.CurrentEpoch;
            StoppingReason = reason;
        }
        if (reason is not null && Verbose) Console.Out.WriteLine(reason);
    }

    private (bool Stop, string? Reason) Evaluate(double current)
    {
        var inv = CultureInfo.InvariantCulture;
        var order = Mode == "min" ? "<" : ">";
        if (CheckFinite && !double.IsFinite(current))
            return (true, $"Monitored metric {Monitor} = {current.ToString(inv)} is not finite. " +
                          $"Previous best value was {BestScore.ToString("0.000", inv)}. Signaling Trainer to stop.");
        if (StoppingThreshold is { } threshold && Better(current, threshold))
            return (true, $"Stopping threshold reached: {Monitor} = {current.ToString(inv)} {order} {threshold.ToString(inv)}. Signaling Trainer to stop.");
        if (DivergenceThreshold is { } divergence && Better(divergence, current))
            return (true, $"Divergence threshold reached: {Monitor} = {current.ToString(inv)} {(Mode == "min" ? ">" : "<")} {divergence.ToString(inv)}. " +
                          "Signaling Trainer to stop.");
        // Lightning: an improvement is a change of more than MinDelta in the good direction.
        if (Better(Mode == "min" ? current + MinDelta : current - MinDelta, BestScore))
        {
            var message = double.IsFinite(BestScore)
                ? $"Metric {Monitor} improved by {Math.Abs(BestScore - current).ToString("0.000", inv)} >= min_delta = {MinDelta.ToString(inv)}. " +
                  $"New best score: {current.ToString("0.000", inv)}"
                : $"Metric {Monitor} improved. New best score: {current.ToString("0.000", inv)}";
            BestScore = current;
            WaitCount = 0;
            return (false, message);
        }
        WaitCount++;
        if (WaitCount >= Patience)
            return (true, $"Monitored metric {Monitor} did not improve in the last {WaitCount} records. " +
                          $"Best score: {BestScore.ToString("0.000", inv)}. Signaling Trainer to stop.");
        return (false, null);
    }

    private bool Better(double value, double than) => Mode == "min" ? value < than : value > than;

    /// <summary>Scores as JSON: numbers when finite, else <c>"inf"</c>, <c>"-inf"</c> or <c>"nan"</c> (JSON has no infinities).</summary>
    private static JsonNode Score(double value) =>
        double.IsFinite(value) ? JsonValue.Create(value) : JsonValue.Create(double.IsNaN(value) ? "nan" : value > 0 ? "inf" : "-inf");

    private static double? ReadScore(JsonNode? node)
    {
        if (node is not JsonValue value) return null;
        if (value.TryGetValue<double>(out var number)) return number;
        return (string?)value switch
        {
            "inf" => double.PositiveInfinity,
            "-inf" => double.NegativeInfinity,
            "nan" => double.NaN,
            var text => throw new FormatException($"EarlyStopping state holds the best score '{text}', which is not a number."),
        };
    }
}
