using Lightning.Callbacks;
using Lightning.Checkpoints;
using Lightning.Loggers;
using Lightning.Loops;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning;

/// <summary>
/// Runs a <see cref="LightningModule"/>'s training: the loop, hooks, callbacks, logging and checkpoints, as Lightning's
/// <c>Trainer</c>. Build it with <see cref="TrainerOptions"/>, then call <see cref="Fit{TBatch}"/>.
/// </summary>
/// <example><code>
/// var trainer = new Trainer(new TrainerOptions { LimitTrainBatches = 100, MaxEpochs = 1 });
/// trainer.Fit(autoencoder, trainLoader);
/// </code></example>
public sealed class Trainer
{
    private readonly List<Callback> _callbacks;
    private IReadOnlyList<LightningLogger>? _loggers;
    private IReadOnlyList<optim.Optimizer> _optimizers = [];

    /// <summary>Creates a trainer; invalid options fail here, before any work.</summary>
    public Trainer(TrainerOptions? options = null)
    {
        Options = options ?? new TrainerOptions();
        Options.Validate();
        DefaultRootDir = Path.GetFullPath(Options.DefaultRootDir ?? Directory.GetCurrentDirectory());
        _callbacks = BuildCallbacks(Options);
    }

    /// <summary>The options this trainer was built with.</summary>
    public TrainerOptions Options { get; }

    /// <summary>The folder for logs and checkpoints when nothing else is configured.</summary>
    public string DefaultRootDir { get; }

    /// <summary>The epoch in progress (0-based).</summary>
    public int CurrentEpoch { get; internal set; }

    /// <summary>Optimizer steps taken so far.</summary>
    public long GlobalStep { get; internal set; }

    /// <summary>Set to true (e.g. by a callback) to stop training after the current batch.</summary>
    public bool ShouldStop { get; set; }

    /// <summary>Training batches per epoch after <see cref="TrainerOptions.LimitTrainBatches"/>; null when the loader's length is unknown.</summary>
    public int? NumTrainingBatches { get; internal set; }

    /// <summary>Batches finished in the current epoch.</summary>
    public int EpochBatchesDone { get; internal set; }

    /// <summary>The loss of the latest training step that produced one.</summary>
    public double? LastTrainLoss { get; internal set; }

    /// <summary>The module being trained, once a fit has started.</summary>
    public LightningModule? LightningModule { get; private set; }

    /// <summary>The callbacks in the order they run (checkpoint callbacks last).</summary>
    public IReadOnlyList<Callback> Callbacks => _callbacks;

    /// <summary>The first <see cref="ModelCheckpoint"/>, if any.</summary>
    public ModelCheckpoint? CheckpointCallback => _callbacks.OfType<ModelCheckpoint>().FirstOrDefault();

    /// <summary>The loggers; the defaults share the next free <c>lightning_logs/version_N</c>, chosen on first use.</summary>
    public IReadOnlyList<LightningLogger> Loggers => _loggers ??= Options.Loggers ?? DefaultLoggers();

    /// <summary>The first logger's folder, where the default checkpoints go too.</summary>
    public string? LogDir => Loggers.FirstOrDefault()?.LogDir;

    /// <summary>The optimizers of the running fit.</summary>
    public IReadOnlyList<optim.Optimizer> Optimizers => _optimizers;

    /// <summary>The latest value of every logged metric; callbacks such as checkpointing read these.</summary>
    public IReadOnlyDictionary<string, double> CallbackMetrics => Metrics.CallbackMetrics;

    /// <summary>The metrics last sent to the loggers.</summary>
    public IReadOnlyDictionary<string, double> LoggedMetrics => Metrics.LoggedMetrics;

    /// <summary>The metrics logged with <c>progBar: true</c>.</summary>
    public IReadOnlyDictionary<string, double> ProgressBarMetrics => Metrics.ProgressBarMetrics;

    internal MetricsConnector Metrics { get; } = new();

    /// <summary>Trains <paramref name="module"/> on <paramref name="trainDataLoader"/> until <see cref="TrainerOptions.MaxEpochs"/> or <see cref="ShouldStop"/>.</summary>
    public void Fit<TBatch>(LightningModule<TBatch> module, IEnumerable<TBatch> trainDataLoader)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(trainDataLoader);
        Run(module, () =>
        {
            module.EnsureComponentsRegistered();
            _optimizers = module.ConfigureOptimizers().Optimizers;
            NumTrainingBatches = Options.LimitTrainBatches.Resolve(DataLoaderLength.Of(trainDataLoader), nameof(TrainerOptions.LimitTrainBatches));
            ShouldStop = false;

            ForEachCallback(c => c.OnFitStart(this, module));
            module.OnFitStart();
            foreach (var logger in Loggers)
            {
                logger.LogHyperparams(module.Hparams);
                logger.Save();
            }

            new FitLoop<TBatch>(this, module, trainDataLoader).Run();

            ForEachCallback(c => c.OnFitEnd(this, module));
            module.OnFitEnd();
            foreach (var logger in Loggers) logger.Complete(RunStatus.Success);
        });
    }

    /// <summary>Writes a checkpoint of the running fit to <paramref name="path"/> (through a temporary file).</summary>
    public void SaveCheckpoint(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var module = LightningModule ?? throw new InvalidOperationException(
            "SaveCheckpoint needs a module: call it during or after Fit.");
        var checkpoint = Checkpoint.Capture(module, _optimizers, CurrentEpoch, GlobalStep);
        module.OnSaveCheckpoint(checkpoint);
        foreach (var callback in _callbacks)
        {
            callback.OnSaveCheckpoint(this, module, checkpoint);
            if (callback.SaveState() is { } state) checkpoint.Callbacks[callback.StateKey] = state;
        }
        checkpoint.Save(path);
    }

    internal void ForEachCallback(Action<Callback> hook)
    {
        foreach (var callback in _callbacks) hook(callback);
    }

    /// <summary>The one place exceptions leave a run: callbacks and loggers hear of it, then it propagates unchanged.</summary>
    private void Run(LightningModule module, Action run)
    {
        LightningModule = module;
        module.Trainer = this;
        try
        {
            run();
        }
        catch (Exception exception)
        {
            foreach (var callback in _callbacks) callback.OnException(this, module, exception);
            foreach (var logger in Loggers) logger.Complete(RunStatus.Failed);
            throw;
        }
    }

    private List<LightningLogger> DefaultLoggers()
    {
        var tensorBoard = new TensorBoardLogger(DefaultRootDir);
        return [tensorBoard, new CsvLogger(DefaultRootDir, version: tensorBoard.Version)];
    }

    private static List<Callback> BuildCallbacks(TrainerOptions options)
    {
        var callbacks = options.Callbacks.ToList();
        if (options.EnableProgressBar && !callbacks.OfType<ProgressBar>().Any()) callbacks.Add(new ProgressBar());
        if (!options.EnableProgressBar && callbacks.OfType<ProgressBar>().Any())
            throw new ArgumentException(
                $"{nameof(TrainerOptions.EnableProgressBar)} = false, but {nameof(TrainerOptions.Callbacks)} holds a ProgressBar; remove one of them.");
        if (options.EnableCheckpointing && !callbacks.Any(c => c.IsCheckpoint)) callbacks.Add(new ModelCheckpoint());
        if (!options.EnableCheckpointing && callbacks.Any(c => c.IsCheckpoint))
            throw new ArgumentException(
                $"{nameof(TrainerOptions.EnableCheckpointing)} = false, but {nameof(TrainerOptions.Callbacks)} holds a checkpoint callback; remove one of them.");
        // Checkpoints run last so they see what every other callback did this epoch.
        return [.. callbacks.Where(c => !c.IsCheckpoint), .. callbacks.Where(c => c.IsCheckpoint)];
    }
}
