using System.Runtime.InteropServices;
using Lightning.Accelerators;
using Lightning.Callbacks;
using Lightning.Checkpoints;
using Lightning.Loggers;
using Lightning.Loops;
using Lightning.Strategies;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning;

/// <summary>
/// Runs a <see cref="LightningModule"/>: the fit, validate, test and predict loops, hooks in Lightning's order,
/// callbacks, logging, checkpoints and resume. Build it with <see cref="TrainerOptions"/>; invalid options fail at once.
/// </summary>
/// <example><code>
/// var trainer = new Trainer(new TrainerOptions { LimitTrainBatches = 100, MaxEpochs = 1 });
/// trainer.Fit(autoencoder, trainLoader);
/// </code></example>
public sealed class Trainer
{
    private readonly List<Callback> _callbacks;
    private readonly SimpleProfiler? _profiler;
    private SignalConnector? _signals;
    private IReadOnlyList<LightningLogger>? _loggers;
    private IReadOnlyList<optim.Optimizer> _optimizers = [];
    private IReadOnlyList<LightningOptimizer> _lightningOptimizers = [];
    private IReadOnlyList<LrSchedulerConfig> _schedulers = [];
    private int _accumulateGradBatches;

    /// <summary>Creates a trainer; invalid options fail here, before any work.</summary>
    public Trainer(TrainerOptions? options = null)
    {
        Options = options ?? new TrainerOptions();
        Options.Validate();
        LibTorch.ApplyDefaults();
        DefaultRootDir = Path.GetFullPath(Options.DefaultRootDir ?? Directory.GetCurrentDirectory());
        Limits = EffectiveLimits.From(Options);
        // Connected (joined to the other processes, or relaunched under mpiexec) before the callbacks, which differ on rank 0.
        Strategy = AcceleratorConnector.Connect(Options.Accelerator, Options.Devices, Options.Strategy, Options.Precision, Options.NumNodes,
            Options.DistributedTimeout, Console.Error.WriteLine, Options.MemoryFormat, Options.MemoryFormatWeights);
        _accumulateGradBatches = Options.AccumulateGradBatches;
        _callbacks = BuildCallbacks(Options, Limits, IsGlobalZero);
        if (Options.Profiler == "simple") _profiler = new SimpleProfiler();
        Hooks = new HookDispatcher(this, _callbacks, Metrics, _profiler);
        if (Options.Barebones) Metrics.Disabled = true;
        if (Strategy.WorldSize > 1) Metrics.SyncDist = Strategy.Reduce;
    }

    /// <summary>The options this trainer was built with.</summary>
    public TrainerOptions Options { get; }

    /// <summary>The folder for logs and checkpoints when nothing else is configured.</summary>
    public string DefaultRootDir { get; }

    /// <summary>How the run is spread over devices and processes; it owns the accelerator and the precision plugin.</summary>
    public Strategy Strategy { get; }

    /// <summary>The device the module and batches live on.</summary>
    public Device RootDevice => Strategy.RootDevice;

    /// <summary>The precision in force, in canonical form (e.g. "bf16-mixed"; "16-mixed" becomes "bf16-mixed" on the CPU).</summary>
    public string Precision => Strategy.Precision.Name;

    /// <summary>The stage running now, if any.</summary>
    public Stage? State { get; private set; }

    /// <summary>True during the sanity validation before training.</summary>
    public bool SanityChecking { get; internal set; }

    /// <summary>The epoch in progress (0-based); after a fit, the number of epochs completed.</summary>
    public int CurrentEpoch { get; internal set; }

    /// <summary>Optimizer steps taken so far.</summary>
    public long GlobalStep { get; internal set; }

    /// <summary>Set to true (e.g. by a callback) to stop training; honoured once <c>MinEpochs</c>/<c>MinSteps</c> are reached.</summary>
    public bool ShouldStop { get; set; }

    /// <summary>The epoch limit in force (Lightning's <c>max_epochs</c>; -1 for none): the fit loop's, which callbacks may change.</summary>
    public int MaxEpochs => FitLoop?.MaxEpochs ?? Limits.MaxEpochs;

    /// <summary>The step limit in force (-1 for none).</summary>
    public long MaxSteps => Limits.MaxSteps;

    /// <summary>Batches whose gradients are summed per optimizer step; callbacks may change it between epochs.</summary>
    public int AccumulateGradBatches
    {
        get => _accumulateGradBatches;
        set => _accumulateGradBatches = value >= 1 ? value : throw new ArgumentOutOfRangeException(nameof(value), value,
            $"{nameof(AccumulateGradBatches)} = {value} is not allowed: it must be 1 or more.");
    }

    /// <summary>Training batches per epoch after the limits; null when the loader's length is unknown.</summary>
    public int? NumTrainingBatches { get; internal set; }

    /// <summary>Validation batches per validation run after the limits; null when unknown or without validation.</summary>
    public int? NumValBatches { get; internal set; }

    /// <summary>Batches finished in the current epoch (of the stage running).</summary>
    public int EpochBatchesDone { get; internal set; }

    /// <summary>The loss of the latest training step that produced one.</summary>
    public double? LastTrainLoss { get; internal set; }

    /// <summary>Optimizer steps the whole fit will take, from the epoch and step limits (Lightning's <c>estimated_stepping_batches</c>).</summary>
    public long EstimatedSteppingBatches
    {
        get
        {
            long perEpoch = NumTrainingBatches is { } n ? (n + AccumulateGradBatches - 1) / AccumulateGradBatches : long.MaxValue;
            long byEpochs = MaxEpochs == -1 || perEpoch == long.MaxValue ? long.MaxValue : perEpoch * MaxEpochs;
            return MaxSteps == -1 ? byEpochs : Math.Min(MaxSteps, byEpochs);
        }
    }

    /// <summary>This process is the one that writes logs and checkpoints (always true without distributed training).</summary>
    public bool IsGlobalZero => Strategy.IsGlobalZero;

    /// <summary>This process's rank among all processes of a "ddp" run (0 otherwise).</summary>
    public int GlobalRank => Strategy.GlobalRank;

    /// <summary>This process's rank among the processes on its node (0 without "ddp").</summary>
    public int LocalRank => Strategy.LocalRank;

    /// <summary>The number of processes training together (1 without "ddp").</summary>
    public int WorldSize => Strategy.WorldSize;

    /// <summary>The epochs of the fit running now or run last (null before a fit).</summary>
    public FitLoop? FitLoop { get; private set; }

    /// <summary>The module being run, once a stage has started.</summary>
    public LightningModule? LightningModule { get; private set; }

    /// <summary>The checkpoint the running stage was restored from, if any (never deleted by checkpoint callbacks).</summary>
    public string? CkptPath { get; internal set; }

    /// <summary>The datamodule of the running stage, if one was given.</summary>
    public LightningDataModule? DataModule { get; private set; }

    /// <summary>The callbacks in the order they run (checkpoint and monitoring callbacks last).</summary>
    public IReadOnlyList<Callback> Callbacks => _callbacks;

    /// <summary>The first <see cref="ModelCheckpoint"/>, if any.</summary>
    public ModelCheckpoint? CheckpointCallback => _callbacks.OfType<ModelCheckpoint>().FirstOrDefault();

    /// <summary>Every <see cref="ModelCheckpoint"/>.</summary>
    public IReadOnlyList<ModelCheckpoint> CheckpointCallbacks => _callbacks.OfType<ModelCheckpoint>().ToList();

    /// <summary>
    /// The loggers; the defaults share the next free <c>lightning_logs/version_N</c>, chosen on first use. Empty on every
    /// "ddp" rank but rank 0, so each metric is written once.
    /// </summary>
    public IReadOnlyList<LightningLogger> Loggers => _loggers ??= Limits.LoggingOff || !IsGlobalZero ? [] : Options.Loggers ?? DefaultLoggers();

    /// <summary>The first logger, if any.</summary>
    public LightningLogger? Logger => Loggers.FirstOrDefault();

    /// <summary>The first logger's folder, where the default checkpoints go too.</summary>
    public string? LogDir => Logger?.LogDir;

    /// <summary>The optimizers of the running fit.</summary>
    public IReadOnlyList<optim.Optimizer> Optimizers => _optimizers;

    /// <summary>The schedulers of the running fit with their stepping rules.</summary>
    public IReadOnlyList<LrSchedulerConfig> LrSchedulerConfigs => _schedulers;

    /// <summary>The latest value of every logged metric; callbacks such as checkpointing read these.</summary>
    public IReadOnlyDictionary<string, double> CallbackMetrics => Metrics.CallbackMetrics;

    /// <summary>The metrics last sent to the loggers.</summary>
    public IReadOnlyDictionary<string, double> LoggedMetrics => Metrics.LoggedMetrics;

    /// <summary>The metrics logged with <c>progBar: true</c>.</summary>
    public IReadOnlyDictionary<string, double> ProgressBarMetrics => Metrics.ProgressBarMetrics;

    internal MetricsConnector Metrics { get; } = new();
    internal EffectiveLimits Limits { get; }
    internal HookDispatcher Hooks { get; }
    internal IReadOnlyList<LightningOptimizer> LightningOptimizers => _lightningOptimizers;

    /// <summary>Optimizer steps taken by each scheduler, replayed on resume (TorchSharp schedulers keep no state dict).</summary>
    internal int[] SchedulerSteps { get; set; } = [];

    /// <summary>Trains <paramref name="module"/>; validates on <paramref name="valDataLoader"/> when given. Resumes from <paramref name="ckptPath"/> ("last", "best" or a file).</summary>
    public void Fit<TBatch>(LightningModule<TBatch> module, IEnumerable<TBatch> trainDataLoader, IEnumerable<TBatch>? valDataLoader = null,
        string? ckptPath = null)
    {
        ArgumentNullException.ThrowIfNull(trainDataLoader);
        Fit(module, new DataSource<TBatch>(trainDataLoader, valDataLoader), ckptPath);
    }

    /// <summary>Trains <paramref name="module"/> on the loaders of <paramref name="datamodule"/>.</summary>
    public void Fit<TBatch>(LightningModule<TBatch> module, LightningDataModule<TBatch> datamodule, string? ckptPath = null)
    {
        ArgumentNullException.ThrowIfNull(datamodule);
        Fit(module, new DataSource<TBatch>(datamodule), ckptPath);
    }

    /// <summary>Runs one validation epoch and returns its epoch metrics.</summary>
    public IReadOnlyDictionary<string, double> Validate<TBatch>(LightningModule<TBatch> module, IEnumerable<TBatch> dataLoader, string? ckptPath = null) =>
        Evaluate(module, new DataSource<TBatch>(null, dataLoader), Stage.Validate, ckptPath);

    /// <summary>Runs one validation epoch on the datamodule's validation loader.</summary>
    public IReadOnlyDictionary<string, double> Validate<TBatch>(LightningModule<TBatch> module, LightningDataModule<TBatch> datamodule, string? ckptPath = null) =>
        Evaluate(module, new DataSource<TBatch>(datamodule), Stage.Validate, ckptPath);

    /// <summary>Runs one test epoch and returns its epoch metrics.</summary>
    public IReadOnlyDictionary<string, double> Test<TBatch>(LightningModule<TBatch> module, IEnumerable<TBatch> dataLoader, string? ckptPath = null) =>
        Evaluate(module, new DataSource<TBatch>(null, null, dataLoader), Stage.Test, ckptPath);

    /// <summary>Runs one test epoch on the datamodule's test loader.</summary>
    public IReadOnlyDictionary<string, double> Test<TBatch>(LightningModule<TBatch> module, LightningDataModule<TBatch> datamodule, string? ckptPath = null) =>
        Evaluate(module, new DataSource<TBatch>(datamodule), Stage.Test, ckptPath);

    /// <summary>Predicts every batch and returns the predictions (yours to dispose).</summary>
    public IReadOnlyList<Tensor> Predict<TBatch>(LightningModule<TBatch> module, IEnumerable<TBatch> dataLoader, string? ckptPath = null) =>
        RunPredict(module, new DataSource<TBatch>(null, null, null, dataLoader), ckptPath);

    /// <summary>Predicts every batch of the datamodule's prediction loader.</summary>
    public IReadOnlyList<Tensor> Predict<TBatch>(LightningModule<TBatch> module, LightningDataModule<TBatch> datamodule, string? ckptPath = null) =>
        RunPredict(module, new DataSource<TBatch>(datamodule), ckptPath);

    /// <summary>
    /// Writes a checkpoint of the running or finished stage to <paramref name="path"/> (through a temporary file). The
    /// state is captured at once; while a stage runs the file is written in the background about a second later (not at
    /// all if the same file is saved again or deleted before then) and is on disk when the stage returns; when no stage
    /// runs it is written immediately.
    /// </summary>
    /// <param name="path">The file to write.</param>
    /// <param name="weightsOnly">Leave out optimizer, scheduler, loop and callback state.</param>
    public void SaveCheckpoint(string path, bool weightsOnly = false)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var module = LightningModule ?? throw new InvalidOperationException("SaveCheckpoint needs a module: call it during or after a stage.");
        // Every rank runs the checkpoint hooks, as in Lightning; the strategy has rank 0 alone write.
        Strategy.SaveCheckpoint(CheckpointConnector.Capture(this, module, weightsOnly), path);
        foreach (var logger in Loggers) logger.AfterSaveCheckpoint(path);
    }

    /// <summary>SIGINT or SIGTERM received while this stage runs, if any (the fit loop agrees on it with the other ranks).</summary>
    internal PosixSignal? ReceivedSignal => _signals?.Received;

    /// <summary>
    /// Called by the evaluation and prediction loops at each batch boundary: after SIGINT or SIGTERM the stage ends here,
    /// through the exception funnel. Under several processes the ranks may see different numbers of evaluation batches,
    /// so there the decision waits for the fit loop's next batch boundary, where they agree, or for the end of the stage.
    /// </summary>
    internal void ThrowIfInterrupted()
    {
        if (WorldSize == 1 && ReceivedSignal is { } signal) throw new TrainingInterruptedException(signal);
    }

    /// <summary>Waits until rank 0's checkpoints are on disk and every rank got here, so any rank may read them next.</summary>
    internal void SyncCheckpoints()
    {
        Strategy.FlushCheckpoints();
        Strategy.Barrier();
    }

    private void Fit<TBatch>(LightningModule<TBatch> module, DataSource<TBatch> data, string? ckptPath)
    {
        ArgumentNullException.ThrowIfNull(module);
        Run(module, data, Stage.Fit, () =>
        {
            ConfigureOptimizers(module);
            var resume = ckptPath is null ? null : CheckpointConnector.Resolve(this, ckptPath, Stage.Fit);
            if (resume is not null) CheckpointConnector.RestoreWeightsAndCallbacks(this, module, data, resume);
            // Built before on_fit_start so callbacks there see the loader sizes and can run tuning steps;
            // kept after the fit, so SaveCheckpoint afterwards still records where training ended.
            var loop = new FitLoop(this, module, fit => new TrainingEpochLoop<TBatch>(this, module, data, fit));
            FitLoop = loop;
            Hooks.Call(Loops.Hooks.OnFitStart, module);
            if (!Limits.LoggingOff)
                foreach (var logger in Loggers)
                {
                    logger.LogHyperparams(module.Hparams);
                    logger.Save();
                }
            if (resume is not null) CheckpointConnector.RestoreTrainingState(this, loop, resume);
            loop.Run();
            Hooks.Call(Loops.Hooks.OnFitEnd, module);
            return 0;
        });
    }

    private IReadOnlyDictionary<string, double> Evaluate<TBatch>(LightningModule<TBatch> module, DataSource<TBatch> data, Stage stage, string? ckptPath)
    {
        ArgumentNullException.ThrowIfNull(module);
        return Run(module, data, stage, () =>
        {
            if (ckptPath is not null) CheckpointConnector.RestoreWeights(this, module, CheckpointConnector.Resolve(this, ckptPath, stage));
            var loader = stage == Stage.Validate ? data.Val() : data.Test();
            if (loader is null) throw new InvalidOperationException($"{stage} needs a data loader; the datamodule's returned none.");
            var hooks = stage == Stage.Validate ? Hooks<TBatch>.Validation : Hooks<TBatch>.Test;
            return (IReadOnlyDictionary<string, double>)new EvaluationLoop<TBatch>(this, module, hooks).Run(loader, sanity: false);
        });
    }

    private IReadOnlyList<Tensor> RunPredict<TBatch>(LightningModule<TBatch> module, DataSource<TBatch> data, string? ckptPath)
    {
        ArgumentNullException.ThrowIfNull(module);
        return Run(module, data, Stage.Predict, () =>
        {
            if (ckptPath is not null) CheckpointConnector.RestoreWeights(this, module, CheckpointConnector.Resolve(this, ckptPath, Stage.Predict));
            return new PredictionLoop<TBatch>(this, module).Run(data.Predict());
        });
    }

    private void ConfigureOptimizers(LightningModule module)
    {
        var configuration = module.ConfigureOptimizers();
        if (configuration.Optimizers.Count > 1 && module.AutomaticOptimization)
            throw new InvalidOperationException(
                $"ConfigureOptimizers returned {configuration.Optimizers.Count} optimizers; automatic optimization trains with one. " +
                "Set AutomaticOptimization = false and step them in TrainingStep (manual optimization).");
        _optimizers = configuration.Optimizers;
        _lightningOptimizers = _optimizers.Select(o => new LightningOptimizer(o, this)).ToList();
        _schedulers = configuration.LrSchedulers;
        SchedulerSteps = new int[_schedulers.Count];
    }

    /// <summary>The one place exceptions leave a run: callbacks and the module hear of it, loggers close, and it propagates unchanged.</summary>
    private T Run<T, TBatch>(LightningModule<TBatch> module, DataSource<TBatch> data, Stage stage, Func<T> run)
    {
        LightningModule = module;
        module.Trainer = this;
        DataModule = data.DataModule;
        if (DataModule is not null) DataModule.Trainer = this;
        State = stage;
        var detectAnomaly = Options.DetectAnomaly ? autograd.detect_anomaly() : null;
        var deterministic = Options.Deterministic ? LibTorch.UseDeterministicAlgorithms() : null;
        Strategy.BeginStage();
        var signals = _signals is null ? _signals = new SignalConnector() : null;
        try
        {
            module.EnsureComponentsRegistered();
            // Metrics in the module's fields sync across ranks when computed, even when the module computes them itself.
            if (Strategy.WorldSize > 1)
                foreach (var (_, metric) in Lightning.Metrics.ModuleMetrics.Find(module)) metric.DistributedStrategy = Strategy;
            // Downloads and the like happen once per machine (Lightning: local rank 0), before any rank sets up.
            if (LocalRank == 0) data.DataModule?.PrepareData();
            Strategy.Barrier();
            data.DataModule?.Setup(stage);
            Hooks.Call(Loops.Hooks.Setup, module, stage);
            // Before ConfigureOptimizers: optimizers must hold the placed and cast parameters.
            Strategy.Setup(this);
            if (Options.UseDistributedSampler) data.Shard = Strategy.ShardLoader;
            var result = run();
            SyncCheckpoints();
            Hooks.Call(Loops.Hooks.Teardown, module, stage);
            data.DataModule?.Teardown(stage);
            Strategy.Teardown();
            foreach (var logger in Loggers) logger.Complete(RunStatus.Success);
            if (_profiler is not null) Console.Out.Write(_profiler.Report(stage.ToString().ToUpperInvariant()));
            // A signal that no batch boundary acted on (evaluation under several processes) still ends the process.
            if (signals?.Received is { } signal) Exit(new TrainingInterruptedException(signal));
            return result;
        }
        catch (Exception caught)
        {
            // A .view that a channels-last MemoryFormat broke surfaces with the fix, for the handlers and the caller alike.
            var explained = MemoryLayout.ExplainViewFailure(caught, Strategy.MemoryFormat, nameof(TrainerOptions.MemoryFormat));
            var exception = explained ?? caught;
            // A failing handler must not hide the original exception or keep the others from running.
            var handlers = _callbacks.Select(c => (Action)(() => c.OnException(this, module, exception)))
                .Append(() => module.OnException(exception))
                .Append(Strategy.FlushCheckpoints)
                .Append(Strategy.Teardown)
                .Concat(Loggers.Select(l => (Action)(() => l.Complete(RunStatus.Failed))));
            foreach (var handler in handlers)
            {
                try { handler(); }
                catch (Exception secondary) { exception.Data[$"Lightning.OnException.{exception.Data.Count}"] = secondary.ToString(); }
            }
            if (exception is TrainingInterruptedException interrupted) Exit(interrupted);
            if (explained is not null) throw explained;
            throw;
        }
        finally
        {
            if (signals is not null)
            {
                signals.Dispose();
                _signals = null;
            }
            Strategy.EndStage();
            State = null;
            deterministic?.Dispose();
            detectAnomaly?.Dispose();
        }
    }

    private static void Exit(TrainingInterruptedException interrupted)
    {
        Console.Error.WriteLine(interrupted.Message);
        Environment.Exit(interrupted.ExitCode);
    }

    private List<LightningLogger> DefaultLoggers()
    {
        var tensorBoard = new TensorBoardLogger(DefaultRootDir);
        return [tensorBoard, new CsvLogger(DefaultRootDir, version: tensorBoard.Version)];
    }

    private static List<Callback> BuildCallbacks(TrainerOptions options, EffectiveLimits limits, bool isGlobalZero)
    {
        var callbacks = options.Callbacks.ToList();
        // Console output comes from rank 0 only.
        if (!isGlobalZero) callbacks.RemoveAll(c => c is ProgressBar or ModelSummary);
        if (isGlobalZero && limits.ProgressBar && !callbacks.OfType<ProgressBar>().Any()) callbacks.Add(new ProgressBar());
        if (isGlobalZero && limits.ModelSummary && !callbacks.OfType<ModelSummary>().Any()) callbacks.Add(new ModelSummary());
        if (options.MaxTime is { } maxTime && !callbacks.OfType<Callbacks.Timer>().Any()) callbacks.Add(new Callbacks.Timer(maxTime));
        if (limits.Checkpointing && !callbacks.OfType<ModelCheckpoint>().Any()) callbacks.Add(new ModelCheckpoint());
        // Checkpoints and monitors run last so they see what every other callback did.
        return [.. callbacks.Where(c => !c.RunsLast), .. callbacks.Where(c => c.RunsLast)];
    }
}
