using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Lightning.Callbacks;

/// <summary>
/// Saves checkpoints during a fit, as Lightning's <c>ModelCheckpoint</c>: the <see cref="SaveTopK"/> best by a
/// <see cref="Monitor"/>ed metric (or, without one, the latest), optionally a <c>last.ckpt</c>, on a schedule of epochs,
/// training steps or training time.
/// </summary>
/// <remarks>
/// <para>
/// File names come from <see cref="Filename"/>, a template such as <c>{epoch}-{val_loss:.2f}</c>: each <c>{name}</c> or
/// <c>{name:spec}</c> is replaced by the metric's value in Python's format mini-language (<c>.2f</c>, <c>02d</c>, <c>.3e</c>, …),
/// preceded by <c>name=</c> when <see cref="AutoInsertMetricName"/> is on, so the example gives
/// <c>epoch=0-val_loss=0.32.ckpt</c>. <c>epoch</c> and <c>step</c> are the current epoch and global step unless logged;
/// a name that is not a metric formats as 0. The default template is <c>{epoch}-{step}</c>. When the file exists already,
/// <c>-v1</c>, <c>-v2</c>, … is appended (<see cref="EnableVersionCounter"/>).
/// </para>
/// <para>
/// The folder is <see cref="DirPath"/> when given, else <c>&lt;first logger's LogDir&gt;/checkpoints</c>, else
/// <c>&lt;DefaultRootDir&gt;/checkpoints</c>. Nothing is saved during the sanity check, outside a fit, with
/// <c>FastDevRun</c>, or twice at the same global step.
/// </para>
/// <para>
/// When it saves (Lightning's <c>save_on_train_epoch_end</c>): with <c>everyNTrainSteps</c> or <c>trainTimeInterval</c>,
/// after training batches; otherwise at the end of each training epoch (after that epoch's validation) when the fit has
/// no validation or validates once at the end of every epoch, and at the end of each validation run when validation
/// happens inside epochs or every few epochs. <see cref="SaveOnTrainEpochEnd"/> overrides that choice.
/// </para>
/// <para>
/// Its state (best paths and scores, top-k table, last path, folder) travels in checkpoints under <see cref="StateKey"/>,
/// so a resumed fit keeps ranking against the earlier files.
/// </para>
/// </remarks>
/// <example><code>
/// var checkpoint = new ModelCheckpoint(monitor: "val_loss", filename: "{epoch:02d}-{val_loss:.2f}", saveTopK: 3, saveLast: true);
/// var trainer = new Trainer(new TrainerOptions { Callbacks = [checkpoint] });
/// trainer.Fit(model, train, val);
/// var best = checkpoint.BestModelPath;
/// </code></example>
public sealed partial class ModelCheckpoint : Callback
{
    /// <summary>The name of the "last" checkpoint, without extension (Lightning's <c>CHECKPOINT_NAME_LAST</c>).</summary>
    public const string LastCheckpointName = "last";

    /// <summary>The extension of checkpoint files.</summary>
    public const string FileExtension = ".ckpt";

    private const string DefaultFilename = "{epoch}-{step}";

    private readonly OrderedDictionary<string, double> _bestKModels = new(StringComparer.Ordinal);
    private readonly Stopwatch _sinceTimeCheck = new();
    private long _lastGlobalStepSaved;
    private bool _validationSeen;
    private bool _validationRan;
    private bool _warnedMissingMonitor;

    /// <summary>Configures when and what to save; every argument has Lightning's default.</summary>
    /// <param name="dirPath">The folder for checkpoints; null for the logger's or the root folder's <c>checkpoints</c>.</param>
    /// <param name="filename">The file name template without extension (default <c>{epoch}-{step}</c>).</param>
    /// <param name="monitor">The metric that ranks checkpoints; null keeps the latest ones.</param>
    /// <param name="verbose">Print a line whenever the top-k ranking changes or a checkpoint is not kept.</param>
    /// <param name="saveLast">Also write <c>last.ckpt</c> whenever this callback checks (<see cref="LastModelPath"/>).</param>
    /// <param name="saveTopK">How many best checkpoints to keep: -1 all, 0 none, k the k best (without a monitor, 1 keeps the latest).</param>
    /// <param name="saveWeightsOnly">Write only the weights, not optimizer, loop and callback state.</param>
    /// <param name="mode"><c>"min"</c> when a lower monitored value is better, <c>"max"</c> when higher is.</param>
    /// <param name="autoInsertMetricName">Write <c>name=</c> before each value in file names.</param>
    /// <param name="everyNTrainSteps">Save every this many optimizer steps (0 or null: not by steps).</param>
    /// <param name="trainTimeInterval">Save when this much time has passed since the last check, after a training batch.</param>
    /// <param name="everyNEpochs">Save every this many epochs (0: never at epoch ends); defaults to 1 when no other trigger is set.</param>
    /// <param name="saveOnTrainEpochEnd">Check at training-epoch ends (true) or at validation ends (false); null decides from the trainer.</param>
    /// <param name="enableVersionCounter">Add <c>-v1</c>, <c>-v2</c>, … rather than overwrite a file of the same name.</param>
    public ModelCheckpoint(
        string? dirPath = null,
        string? filename = null,
        string? monitor = null,
        bool verbose = false,
        bool saveLast = false,
        int saveTopK = 1,
        bool saveWeightsOnly = false,
        string mode = "min",
        bool autoInsertMetricName = true,
        int? everyNTrainSteps = null,
        TimeSpan? trainTimeInterval = null,
        int? everyNEpochs = null,
        bool? saveOnTrainEpochEnd = null,
        bool enableVersionCounter = true)
    {
        if (dirPath is not null) ArgumentException.ThrowIfNullOrWhiteSpace(dirPath);
        if (monitor is not null) ArgumentException.ThrowIfNullOrWhiteSpace(monitor);
        ArgumentNullException.ThrowIfNull(mode);
        if (mode is not ("min" or "max"))
            throw new ArgumentOutOfRangeException(nameof(mode), mode, $"mode = \"{mode}\" is not allowed: it must be one of \"min\", \"max\".");
        if (saveTopK < -1)
            throw new ArgumentOutOfRangeException(nameof(saveTopK), saveTopK,
                $"saveTopK = {saveTopK} is not allowed: use -1 (keep all), 0 (keep none) or the number of best checkpoints to keep.");
        if (everyNTrainSteps is < 0)
            throw new ArgumentOutOfRangeException(nameof(everyNTrainSteps), everyNTrainSteps,
                $"everyNTrainSteps = {everyNTrainSteps} is not allowed: it must be 0 (off) or more.");
        if (everyNEpochs is < 0)
            throw new ArgumentOutOfRangeException(nameof(everyNEpochs), everyNEpochs,
                $"everyNEpochs = {everyNEpochs} is not allowed: it must be 0 (off) or more.");
        if (trainTimeInterval is { } interval && interval <= TimeSpan.Zero)
            throw new ArgumentOutOfRangeException(nameof(trainTimeInterval), interval,
                $"trainTimeInterval = {interval} is not allowed: it must be a positive duration.");

        // Lightning's triggers: with none given, save every epoch; otherwise the unset ones are off.
        bool noTrigger = everyNTrainSteps is null && everyNEpochs is null && trainTimeInterval is null;
        EveryNEpochs = noTrigger ? 1 : everyNEpochs ?? 0;
        EveryNTrainSteps = everyNTrainSteps ?? 0;
        TrainTimeInterval = trainTimeInterval;
        if ((EveryNTrainSteps >= 1 ? 1 : 0) + (EveryNEpochs >= 1 ? 1 : 0) + (TrainTimeInterval is null ? 0 : 1) > 1)
            throw new ArgumentException(
                $"everyNTrainSteps = {EveryNTrainSteps}, everyNEpochs = {EveryNEpochs} and trainTimeInterval = " +
                $"{TrainTimeInterval?.ToString() ?? "null"} are mutually exclusive: set at most one of them. " +
                "Use several ModelCheckpoint callbacks to save on several schedules.", nameof(everyNTrainSteps));
        if (monitor is null && saveTopK is not (-1 or 0 or 1))
            throw new ArgumentException(
                $"saveTopK = {saveTopK} with monitor = null is not allowed: without a monitored metric there is nothing to rank. " +
                "Set monitor, or use saveTopK -1 (keep all), 0 (keep none) or 1 (keep the latest).", nameof(saveTopK));

        DirPath = dirPath is null ? null : Path.GetFullPath(dirPath);
        Filename = string.IsNullOrEmpty(filename) ? null : filename;
        Monitor = monitor;
        Verbose = verbose;
        SaveLast = saveLast;
        SaveTopK = saveTopK;
        SaveWeightsOnly = saveWeightsOnly;
        Mode = mode;
        AutoInsertMetricName = autoInsertMetricName;
        SaveOnTrainEpochEnd = saveOnTrainEpochEnd;
        EnableVersionCounter = enableVersionCounter;
        KthValue = mode == "min" ? double.PositiveInfinity : double.NegativeInfinity;
    }

    /// <summary>The folder checkpoints go to; resolved when a stage is set up if it was not given.</summary>
    public string? DirPath { get; private set; }

    /// <summary>The file name template without extension; null means <c>{epoch}-{step}</c>.</summary>
    public string? Filename { get; }

    /// <summary>The metric that ranks checkpoints, or null to keep the latest.</summary>
    public string? Monitor { get; }

    /// <summary><c>"min"</c> or <c>"max"</c>: whether lower or higher <see cref="Monitor"/> values are better.</summary>
    public string Mode { get; }

    /// <summary>How many best checkpoints are kept: -1 all, 0 none.</summary>
    public int SaveTopK { get; }

    /// <summary>Whether <c>last.ckpt</c> is written too.</summary>
    public bool SaveLast { get; }

    /// <summary>Whether checkpoints hold only the weights.</summary>
    public bool SaveWeightsOnly { get; }

    /// <summary>Whether file names carry <c>name=</c> before each value.</summary>
    public bool AutoInsertMetricName { get; }

    /// <summary>Whether ranking decisions are printed.</summary>
    public bool Verbose { get; }

    /// <summary>Optimizer steps between saves; 0 when not saving by steps.</summary>
    public int EveryNTrainSteps { get; }

    /// <summary>Epochs between saves; 0 when not saving at epoch ends.</summary>
    public int EveryNEpochs { get; }

    /// <summary>Training time between saves, when saving by time.</summary>
    public TimeSpan? TrainTimeInterval { get; }

    /// <summary>Check at training-epoch ends (true) or validation ends (false); null lets the trainer's flags decide.</summary>
    public bool? SaveOnTrainEpochEnd { get; }

    /// <summary>Whether clashing names get <c>-v1</c>, <c>-v2</c>, … rather than being overwritten.</summary>
    public bool EnableVersionCounter { get; }

    /// <summary>The best checkpoint by <see cref="Monitor"/>; without a monitor, the latest one saved.</summary>
    public string? BestModelPath { get; private set; }

    /// <summary>The <see cref="Monitor"/> value of <see cref="BestModelPath"/>; null without a monitor or before a save.</summary>
    public double? BestModelScore { get; private set; }

    /// <summary>The kept checkpoints with their monitored values, in the order they were saved.</summary>
    public IReadOnlyDictionary<string, double> BestKModels => _bestKModels;

    /// <summary>The worst of the kept checkpoints once <see cref="SaveTopK"/> are kept: the next to go.</summary>
    public string? KthBestModelPath { get; private set; }

    /// <summary>The monitored value of <see cref="KthBestModelPath"/> (infinitely bad until k checkpoints are kept).</summary>
    public double KthValue { get; private set; }

    /// <summary>The monitored value at the latest checkpoint kept.</summary>
    public double? CurrentScore { get; private set; }

    /// <summary>The latest <c>last.ckpt</c> written, when <see cref="SaveLast"/> is on.</summary>
    public string? LastModelPath { get; private set; }

    /// <summary>Includes what tells two checkpoint callbacks apart, so several can keep their state in one checkpoint.</summary>
    public override string StateKey =>
        $"ModelCheckpoint{{'monitor': {PyRepr(Monitor)}, 'mode': '{Mode}', 'every_n_train_steps': {EveryNTrainSteps}, " +
        $"'every_n_epochs': {EveryNEpochs}, 'train_time_interval': {(TrainTimeInterval is { } t ? PyRepr(t.ToString("c", CultureInfo.InvariantCulture)) : "None")}}}";

    /// <inheritdoc />
    public override bool RunsLast => true;

    /// <summary>The path of the checkpoint that <paramref name="metrics"/> would be saved to.</summary>
    /// <param name="metrics">Values for the template's names; <c>epoch</c> and <c>step</c> are written as whole numbers.</param>
    /// <param name="filename">A template to use instead of <see cref="Filename"/>.</param>
    /// <param name="version">A version suffix (<c>-v{version}</c>) to append.</param>
    /// <returns>The file name, inside <see cref="DirPath"/> once that is known.</returns>
    public string FormatCheckpointName(IReadOnlyDictionary<string, double> metrics, string? filename = null, int? version = null)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        var name = FormatTemplate(string.IsNullOrEmpty(filename) ? Filename ?? DefaultFilename : filename, metrics, AutoInsertMetricName);
        if (version is { } v) name += $"-v{v}";
        name += FileExtension;
        return DirPath is null ? name : Path.Combine(DirPath, name);
    }

    /// <inheritdoc />
    public override void Setup(Trainer trainer, LightningModule module, Stage stage)
    {
        // Under "ddp" only rank 0 has loggers (and picks the version folder): every rank takes its choice.
        DirPath ??= trainer.Strategy.Broadcast(trainer.Loggers.Count > 0
            ? Path.Combine(trainer.Loggers[0].LogDir, "checkpoints")
            : Path.Combine(trainer.DefaultRootDir, "checkpoints"));
        if (stage != Stage.Fit) return;
        _validationSeen = _validationRan = false;
        if (trainer.IsGlobalZero && SaveTopK != 0 && Directory.Exists(DirPath) && Directory.EnumerateFileSystemEntries(DirPath).Any())
            Warn($"Checkpoint directory {DirPath} exists and is not empty.");
    }

    /// <inheritdoc />
    public override void OnTrainStart(Trainer trainer, LightningModule module) => _sinceTimeCheck.Restart();

    /// <inheritdoc />
    public override void OnTrainBatchEnd(Trainer trainer, LightningModule module, double? loss, object? batch, int batchIdx)
    {
        if (SkipSaving(trainer)) return;
        bool skipBatch = EveryNTrainSteps < 1 || trainer.GlobalStep % EveryNTrainSteps != 0;
        bool skipTime = TrainTimeInterval is not { } interval || _sinceTimeCheck.Elapsed < interval;
        if (skipBatch && skipTime) return;
        if (!skipTime) _sinceTimeCheck.Restart();
        var candidates = MonitorCandidates(trainer);
        SaveTopKCheckpoint(trainer, candidates);
        SaveLastCheckpoint(trainer, candidates);
    }

    /// <inheritdoc />
    public override void OnTrainEpochEnd(Trainer trainer, LightningModule module)
    {
        if (SkipSaving(trainer) || !ChecksOnTrainEpochEnd(trainer)) return;
        SaveAtEpochOrValidationEnd(trainer);
    }

    /// <inheritdoc />
    public override void OnValidationStart(Trainer trainer, LightningModule module)
    {
        if (trainer.State == Stage.Fit) _validationSeen = true;
    }

    /// <inheritdoc />
    public override void OnValidationEnd(Trainer trainer, LightningModule module)
    {
        if (trainer.State == Stage.Fit && !trainer.SanityChecking) _validationRan = true;
        if (SkipSaving(trainer) || ChecksOnTrainEpochEnd(trainer)) return;
        SaveAtEpochOrValidationEnd(trainer);
    }

    /// <inheritdoc />
    public override JsonObject SaveState()
    {
        var bestK = new JsonObject();
        foreach (var (path, score) in _bestKModels) bestK[path] = Score(score);
        return new JsonObject
        {
            ["monitor"] = Monitor,
            ["best_model_score"] = Score(BestModelScore),
            ["best_model_path"] = BestModelPath,
            ["current_score"] = Score(CurrentScore),
            ["dirpath"] = DirPath,
            ["best_k_models"] = bestK,
            ["kth_best_model_path"] = KthBestModelPath,
            ["kth_value"] = Score(KthValue),
            ["last_model_path"] = LastModelPath,
        };
    }

    /// <summary>
    /// Restores what <see cref="SaveState"/> returned. As in Lightning, the ranking is restored only when the saved folder is
    /// this callback's folder; otherwise only <see cref="BestModelPath"/> is, with a warning.
    /// </summary>
    public override void LoadState(JsonObject state)
    {
        ArgumentNullException.ThrowIfNull(state);
        var savedDir = (string?)state["dirpath"] ?? DirPath;
        if (SamePath(savedDir, DirPath))
        {
            BestModelScore = ReadScore(state["best_model_score"]);
            CurrentScore = ReadScore(state["current_score"]);
            KthBestModelPath = (string?)state["kth_best_model_path"] ?? KthBestModelPath;
            KthValue = ReadScore(state["kth_value"]) ?? KthValue;
            if (state["best_k_models"] is JsonObject bestK)
            {
                _bestKModels.Clear();
                foreach (var (path, score) in bestK) _bestKModels[path] = ReadScore(score) ?? double.NaN;
            }
            LastModelPath = (string?)state["last_model_path"] ?? LastModelPath;
        }
        else
        {
            Warn($"The checkpoint folder has changed from '{savedDir}' to '{DirPath}', so BestModelScore, KthBestModelPath, " +
                 "KthValue, LastModelPath and BestKModels are not restored; only BestModelPath is.");
        }
        BestModelPath = (string?)state["best_model_path"];
    }

    private void SaveAtEpochOrValidationEnd(Trainer trainer)
    {
        var candidates = MonitorCandidates(trainer);
        if (EveryNEpochs >= 1 && (trainer.CurrentEpoch + 1) % EveryNEpochs == 0) SaveTopKCheckpoint(trainer, candidates);
        SaveLastCheckpoint(trainer, candidates);
    }

    private bool SkipSaving(Trainer trainer) =>
        trainer.Options.FastDevRun > 0
        || trainer.State != Stage.Fit
        || trainer.SanityChecking
        || _lastGlobalStepSaved == trainer.GlobalStep;

    /// <summary>Lightning's <c>_should_save_on_train_epoch_end</c>, except that a fit without validation always saves at epoch ends.</summary>
    private bool ChecksOnTrainEpochEnd(Trainer trainer)
    {
        if (SaveOnTrainEpochEnd is { } explicitChoice) return explicitChoice;
        bool hasValidation = trainer.NumValBatches is > 0 || (trainer.NumValBatches is null && _validationSeen);
        if (!hasValidation) return true;
        if (trainer.Options.CheckValEveryNEpoch != 1) return false;
        return trainer.Options.ValCheckInterval == BatchLimit.All;
    }

    private Dictionary<string, double> MonitorCandidates(Trainer trainer)
    {
        var candidates = new Dictionary<string, double>(trainer.CallbackMetrics, StringComparer.Ordinal);
        candidates["epoch"] = candidates.TryGetValue("epoch", out var epoch) ? Math.Truncate(epoch) : trainer.CurrentEpoch;
        candidates["step"] = candidates.TryGetValue("step", out var step) ? Math.Truncate(step) : trainer.GlobalStep;
        return candidates;
    }

    private void SaveTopKCheckpoint(Trainer trainer, Dictionary<string, double> candidates)
    {
        if (SaveTopK == 0) return;
        if (Monitor is null)
        {
            SaveLatestCheckpoint(trainer, candidates);
            return;
        }
        if (!candidates.TryGetValue(Monitor, out var current))
        {
            var message =
                $"ModelCheckpoint(monitor: \"{Monitor}\") could not find the monitored metric among the logged metrics: " +
                $"[{string.Join(", ", candidates.Keys.Order(StringComparer.Ordinal))}]. HINT: did you call Log(\"{Monitor}\", value) in the LightningModule?";
            // As in Lightning: an error once validation has run (the metric should exist by then), a warning before.
            if (_validationRan) throw new InvalidOperationException(message);
            if (!_warnedMissingMonitor) Warn(message);
            _warnedMissingMonitor = true;
            return;
        }
        if (ShouldEnterTopK(current)) UpdateBestAndSave(trainer, current, candidates);
        else if (Verbose)
            Info($"Epoch {candidates["epoch"]}, global step {candidates["step"]}: '{Monitor}' was not in top {SaveTopK}");
    }

    private bool ShouldEnterTopK(double current)
    {
        if (SaveTopK == -1 || _bestKModels.Count < SaveTopK) return true;
        var kthPath = KthBestModelPath is { } path && _bestKModels.ContainsKey(path) ? path : WorstPath();
        var kth = _bestKModels[kthPath];
        return Mode == "min" ? current < kth : current > kth;
    }

    private void UpdateBestAndSave(Trainer trainer, double current, Dictionary<string, double> candidates)
    {
        int k = SaveTopK == -1 ? _bestKModels.Count + 1 : SaveTopK;
        string? toDelete = null;
        if (_bestKModels.Count == k && k > 0)
        {
            toDelete = KthBestModelPath is { } kth && _bestKModels.ContainsKey(kth) ? kth : WorstPath();
            _bestKModels.Remove(toDelete);
        }
        // NaN is never good: rank it last.
        if (double.IsNaN(current)) current = Mode == "min" ? double.PositiveInfinity : double.NegativeInfinity;

        var path = AvailablePath(trainer, candidates, null, toDelete);
        CurrentScore = current;
        _bestKModels[path] = current;
        if (_bestKModels.Count == k)
        {
            KthBestModelPath = WorstPath();
            KthValue = _bestKModels[KthBestModelPath];
        }
        BestModelPath = Mode == "min" ? _bestKModels.MinBy(e => e.Value).Key : _bestKModels.MaxBy(e => e.Value).Key;
        BestModelScore = _bestKModels[BestModelPath];
        if (Verbose)
            Info($"Epoch {candidates["epoch"]}, global step {candidates["step"]}: '{Monitor}' reached {current:0.00000} " +
                 $"(best {BestModelScore:0.00000}), saving model to '{path}' as top {k}");

        Save(trainer, path);
        if (toDelete is not null && ShouldRemove(trainer, toDelete, path)) trainer.Strategy.RemoveCheckpoint(toDelete);
    }

    /// <summary>The worst kept checkpoint; the first saved among equals, as Python's <c>max</c>/<c>min</c> pick.</summary>
    private string WorstPath() => Mode == "min" ? _bestKModels.MaxBy(e => e.Value).Key : _bestKModels.MinBy(e => e.Value).Key;

    private void SaveLatestCheckpoint(Trainer trainer, Dictionary<string, double> candidates)
    {
        var path = AvailablePath(trainer, candidates, null, BestModelPath);
        var previous = BestModelPath;
        BestModelPath = path; // before saving: it is part of the saved state
        Save(trainer, path);
        if (SaveTopK == 1 && previous is not null && ShouldRemove(trainer, previous, path)) trainer.Strategy.RemoveCheckpoint(previous);
    }

    private void SaveLastCheckpoint(Trainer trainer, Dictionary<string, double> candidates)
    {
        if (!SaveLast) return;
        var path = AvailablePath(trainer, candidates, LastCheckpointName, LastModelPath);
        var previous = LastModelPath;
        LastModelPath = path;
        Save(trainer, path);
        if (previous is not null && ShouldRemove(trainer, previous, path)) trainer.Strategy.RemoveCheckpoint(previous);
    }

    /// <summary>The formatted path, with the first free <c>-vN</c> suffix when the name is taken by a file other than <paramref name="replacing"/>.</summary>
    private string AvailablePath(Trainer trainer, Dictionary<string, double> candidates, string? filename, string? replacing)
    {
        var path = FormatCheckpointName(candidates, filename);
        if (!EnableVersionCounter) return path;
        for (int version = 1; trainer.Strategy.CheckpointExists(path) && path != replacing; version++)
            path = FormatCheckpointName(candidates, filename, version);
        return path;
    }

    private void Save(Trainer trainer, string path)
    {
        trainer.SaveCheckpoint(path, SaveWeightsOnly);
        _lastGlobalStepSaved = trainer.GlobalStep;
    }

    /// <summary>Only files inside this callback's folder are ever deleted; never the one just written, nor the one the fit resumed from.</summary>
    private bool ShouldRemove(Trainer trainer, string previous, string current)
    {
        if (previous == current || DirPath is null || SamePath(previous, trainer.CkptPath)) return false;
        var folder = Path.TrimEndingDirectorySeparator(Path.GetFullPath(DirPath)) + Path.DirectorySeparatorChar;
        return Path.GetFullPath(previous).StartsWith(folder, StringComparison.Ordinal);
    }

    private static bool SamePath(string? a, string? b) =>
        a is null || b is null
            ? a == b
            : Path.TrimEndingDirectorySeparator(Path.GetFullPath(a)) == Path.TrimEndingDirectorySeparator(Path.GetFullPath(b));

    private static void Warn(string message) => Console.Error.WriteLine($"Warning: {message}");

    private static void Info(string message) => Console.Out.WriteLine(message);

    private static string PyRepr(string? value) => value is null ? "None" : $"'{value}'";

    /// <summary>Scores as JSON: numbers when finite, else <c>"inf"</c>, <c>"-inf"</c> or <c>"nan"</c> (JSON has no infinities).</summary>
    private static JsonNode? Score(double? value) => value switch
    {
        null => null,
        { } v when double.IsFinite(v) => JsonValue.Create(v),
        { } v => JsonValue.Create(double.IsNaN(v) ? "nan" : v > 0 ? "inf" : "-inf"),
    };

    private static double? ReadScore(JsonNode? node)
    {
        if (node is not JsonValue value) return null;
        if (value.TryGetValue<double>(out var number)) return number;
        return (string?)value switch
        {
            "inf" => double.PositiveInfinity,
            "-inf" => double.NegativeInfinity,
            "nan" => double.NaN,
            var text => throw new FormatException($"ModelCheckpoint state holds the score '{text}', which is not a number."),
        };
    }

    // ---- File name templates: Python's str.format with Lightning's name insertion ----

    [GeneratedRegex(@"\{([^{}:]*)(?::([^{}]*))?\}")]
    private static partial Regex TemplateField();

    [GeneratedRegex(@"^(?:(?<fill>.)?(?<align>[<>=^]))?(?<sign>[-+ ])?(?<zero>0)?(?<width>\d+)?(?<group>[,_])?(?:\.(?<precision>\d+))?(?<type>[deEfFgG%s])?$")]
    private static partial Regex FormatSpec();

    private static string FormatTemplate(string template, IReadOnlyDictionary<string, double> metrics, bool insertNames) =>
        TemplateField().Replace(template, match =>
        {
            var name = match.Groups[1].Value;
            // A name that is not a metric is written as 0, as Lightning does.
            var known = metrics.TryGetValue(name, out var value);
            var integral = !known || name is "epoch" or "step";
            var text = FormatValue(known ? value : 0, integral, match.Groups[2].Success ? match.Groups[2].Value : "", template, name);
            return insertNames ? $"{name}={text}" : text;
        });

    private static string FormatValue(double value, bool integral, string spec, string template, string name)
    {
        var inv = CultureInfo.InvariantCulture;
        var parts = FormatSpec().Match(spec);
        if (!parts.Success)
            throw new FormatException($"The checkpoint filename template '{template}' has the format spec '{spec}' for '{name}', " +
                                      "which is not one of Python's ([[fill]align][sign][0][width][,][.precision][type], type one of d e E f F g G % s).");
        int? precision = parts.Groups["precision"].Success ? int.Parse(parts.Groups["precision"].Value, inv) : null;
        var type = parts.Groups["type"].Value;
        var grouping = parts.Groups["group"].Value;
        var negative = value < 0 || (value == 0 && double.IsNegative(value) && !integral);
        var magnitude = Math.Abs(value);

        string body;
        switch (type)
        {
            case "d":
                if (magnitude != Math.Floor(magnitude) || !double.IsFinite(magnitude))
                    throw new FormatException($"The checkpoint filename template '{template}' formats '{name}' = " +
                                              $"{value.ToString("R", inv)} with 'd', which needs a whole number; use e.g. '.2f'.");
                body = grouping.Length > 0 ? magnitude.ToString("#,0", inv) : magnitude.ToString("0", inv);
                break;
            case "f" or "F":
                body = Fixed(magnitude, precision ?? 6, grouping.Length > 0);
                break;
            case "e" or "E":
                body = Exponent(magnitude, precision ?? 6);
                break;
            case "%":
                body = Fixed(magnitude * 100, precision ?? 6, grouping.Length > 0) + "%";
                break;
            case "g" or "G":
                body = General(magnitude, precision ?? 6);
                break;
            default: // "" or "s": str(value)
                body = precision is { } p ? General(magnitude, p) : integral && double.IsFinite(magnitude) && magnitude == Math.Floor(magnitude)
                    ? magnitude.ToString("0", inv)
                    : FloatRepr(magnitude);
                if (type == "s" && precision is { } cut && body.Length > cut) body = body[..cut];
                break;
        }
        if (type is "E" or "F" or "G") body = body.ToUpperInvariant();
        if (grouping == "_") body = body.Replace(',', '_');

        var sign = negative ? "-" : parts.Groups["sign"].Value is "+" ? "+" : parts.Groups["sign"].Value is " " ? " " : "";
        int width = parts.Groups["width"].Success ? int.Parse(parts.Groups["width"].Value, inv) : 0;
        var zero = parts.Groups["zero"].Success;
        var fill = parts.Groups["fill"].Success ? parts.Groups["fill"].Value[0] : zero && !parts.Groups["align"].Success ? '0' : ' ';
        var align = parts.Groups["align"].Success ? parts.Groups["align"].Value[0] : zero ? '=' : type == "s" ? '<' : '>';
        var padding = Math.Max(0, width - sign.Length - body.Length);
        return align switch
        {
            '<' => sign + body + new string(fill, padding),
            '^' => new string(fill, padding / 2) + sign + body + new string(fill, padding - padding / 2),
            '=' => sign + new string(fill, padding) + body,
            _ => new string(fill, padding) + sign + body,
        };
    }

    private static string Fixed(double magnitude, int precision, bool grouping)
    {
        if (!double.IsFinite(magnitude)) return NonFinite(magnitude);
        return magnitude.ToString((grouping ? "#,0" : "0") + (precision > 0 ? "." + new string('0', precision) : ""), CultureInfo.InvariantCulture);
    }

    private static string Exponent(double magnitude, int precision)
    {
        if (!double.IsFinite(magnitude)) return NonFinite(magnitude);
        return magnitude.ToString("0" + (precision > 0 ? "." + new string('0', precision) : "") + "e+00", CultureInfo.InvariantCulture);
    }

    /// <summary>Python's <c>g</c>: <paramref name="precision"/> significant digits, scientific for very small or large values, no trailing zeros.</summary>
    private static string General(double magnitude, int precision)
    {
        if (!double.IsFinite(magnitude)) return NonFinite(magnitude);
        precision = Math.Max(precision, 1);
        if (magnitude == 0) return "0";
        var exponent = (int)Math.Floor(Math.Log10(double.Parse(Exponent(magnitude, precision - 1), CultureInfo.InvariantCulture)));
        if (exponent < -4 || exponent >= precision)
        {
            var text = Exponent(magnitude, precision - 1);
            var e = text.IndexOf('e');
            return TrimZeros(text[..e]) + text[e..];
        }
        return TrimZeros(magnitude.ToString("0." + new string('0', Math.Max(0, precision - 1 - exponent)), CultureInfo.InvariantCulture));
    }

    /// <summary>Python's <c>repr(float)</c>: the shortest round-trip digits, <c>1.0</c> for whole numbers, <c>1e-05</c> style exponents.</summary>
    private static string FloatRepr(double magnitude)
    {
        if (!double.IsFinite(magnitude)) return NonFinite(magnitude);
        var text = magnitude.ToString("R", CultureInfo.InvariantCulture);
        var e = text.IndexOf('E');
        if (e < 0) return text.Contains('.') ? text : text + ".0";
        var exponent = int.Parse(text[(e + 1)..], CultureInfo.InvariantCulture);
        return $"{text[..e]}e{(exponent < 0 ? "-" : "+")}{Math.Abs(exponent):00}";
    }

    private static string TrimZeros(string text) => text.Contains('.') ? text.TrimEnd('0').TrimEnd('.') : text;

    private static string NonFinite(double magnitude) => double.IsNaN(magnitude) ? "nan" : "inf";
}
