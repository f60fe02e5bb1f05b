using Lightning.Callbacks;
using Lightning.Loggers;
using Lightning.Precision;
using Lightning.Strategies;

namespace Lightning;

/// <summary>
/// The flags of a <see cref="Trainer"/>, with the meaning of Lightning's <c>Trainer(...)</c> arguments. Validated when
/// the trainer is built: an invalid value or combination fails with a message naming the option, the value and what is allowed.
/// </summary>
public sealed record TrainerOptions
{
    /// <summary>"auto" (default: CUDA when present, else CPU), "cpu", "cuda" or "gpu".</summary>
    public string Accelerator { get; init; } = "auto";

    /// <summary>Which devices: "auto", a count, -1 for all, or indices.</summary>
    public Devices Devices { get; init; } = Devices.Auto;

    /// <summary>
    /// How work is spread over devices: "auto" (data parallel when several devices are asked for), "single_device",
    /// "dp": one process, each batch split across replicas whose training steps run in parallel, one optimizer step; or
    /// "ddp": one process per device on MPI (NumNodes × Devices processes), started by <c>mpiexec -n N</c> or relaunched
    /// under it by the trainer, each rank on its shard of the data, gradients averaged every optimizer step; or
    /// "ddp_sharded" (aliases "zero_stage_2", "deepspeed_stage_2"): as "ddp", with gradients and optimizer state sharded
    /// over the ranks (ZeRO stage 2 on MPI). A <see cref="Strategies.Strategy"/> instance of your own may be given instead.
    /// </summary>
    public StrategyChoice Strategy { get; init; } = "auto";

    /// <summary>Machines taking part in "ddp" or "ddp_sharded" (default 1); the world size is NumNodes × Devices.</summary>
    public int NumNodes { get; init; } = 1;

    /// <summary>With "ddp", give each rank its shard of the training and evaluation loaders (default true), as Lightning's <c>use_distributed_sampler</c>.</summary>
    public bool UseDistributedSampler { get; init; } = true;

    /// <summary>How long a "ddp" collective (gradient Allreduce, barrier) waits for the other ranks before this rank fails (default 30 minutes); a <see cref="DdpStrategy"/> instance has its own.</summary>
    public TimeSpan DistributedTimeout { get; init; } = TimeSpan.FromMinutes(30);

    /// <summary>
    /// Numeric precision: "32-true" (default), "64-true", "16-true", "bf16-true" (weights and inputs in that dtype),
    /// "16-mixed", "bf16-mixed" (libtorch autocast around each step, float32 master weights; float16 adds loss scaling and
    /// needs CUDA, falling back to bf16 on the CPU). Aliases: "32", "64", "16", "bf16". A <see cref="PrecisionPlugin"/>
    /// of your own may be given instead.
    /// </summary>
    public PrecisionChoice Precision { get; init; } = "32-true";

    /// <summary>
    /// How floating 4-D (5-D) batches are laid out in memory on their way to the device, as PyTorch's <c>memory_format</c>:
    /// "contiguous_format" (default: NCHW as given), "channels_last" (4-D batches as NHWC) or "channels_last_3d" (5-D as
    /// NDHWC). On the CPU, channels-last inputs make oneDNN keep every convolution activation channels-last, which
    /// trains a small CNN about 1.5 times as fast; results agree to float rounding. Code that calls <c>.view</c> on an
    /// activation must use <c>reshape</c> or <c>flatten</c> instead.
    /// </summary>
    public string MemoryFormat { get; init; } = "contiguous_format";

    /// <summary>
    /// With a channels-last <see cref="MemoryFormat"/>, also lay out the module's floating parameters and buffers of
    /// that rank (convolution weights) so when it is set up (default true), as PyTorch's <c>model.to(memory_format=...)</c>.
    /// Convolutions then run channels-last even where the module makes its images itself (unflattening a feature
    /// vector). Checkpoints, <c>Save</c> and ONNX export write contiguous copies.
    /// </summary>
    public bool MemoryFormatWeights { get; init; } = true;

    /// <summary>Stop after this many epochs; -1 for no limit. Default: 1000 unless <see cref="MaxSteps"/> is set, then no limit.</summary>
    public int? MaxEpochs { get; init; }

    /// <summary>Keep training at least this many epochs, even when a callback asks to stop.</summary>
    public int? MinEpochs { get; init; }

    /// <summary>Stop after this many optimizer steps; -1 (default) for no limit.</summary>
    public long MaxSteps { get; init; } = -1;

    /// <summary>Keep training at least this many optimizer steps.</summary>
    public long? MinSteps { get; init; }

    /// <summary>Stop once this much training time has passed (adds a <see cref="Timer"/> callback).</summary>
    public TimeSpan? MaxTime { get; init; }

    /// <summary>Training batches per epoch: a count or a fraction (default: all).</summary>
    public BatchLimit LimitTrainBatches { get; init; } = BatchLimit.All;

    /// <summary>Validation batches per validation run.</summary>
    public BatchLimit LimitValBatches { get; init; } = BatchLimit.All;

    /// <summary>Test batches.</summary>
    public BatchLimit LimitTestBatches { get; init; } = BatchLimit.All;

    /// <summary>Prediction batches.</summary>
    public BatchLimit LimitPredictBatches { get; init; } = BatchLimit.All;

    /// <summary>
    /// How often to validate inside an epoch: a fraction of the epoch (0.25 = four times) or a number of training
    /// batches (which may span epochs when <see cref="CheckValEveryNEpoch"/> is null). Default: once per epoch.
    /// </summary>
    public BatchLimit ValCheckInterval { get; init; } = BatchLimit.All;

    /// <summary>Validate every this many epochs (default 1); null for step-driven validation by <see cref="ValCheckInterval"/>.</summary>
    public int? CheckValEveryNEpoch { get; init; } = 1;

    /// <summary>Validation batches run before training as a sanity check (default 2); -1 for all.</summary>
    public int NumSanityValSteps { get; init; } = 2;

    /// <summary>Step the optimizer every this many batches, summing their gradients (default 1).</summary>
    public int AccumulateGradBatches { get; init; } = 1;

    /// <summary>Clip gradients at this value before each optimizer step; null (default) for no clipping.</summary>
    public double? GradientClipVal { get; init; }

    /// <summary>Clip by total norm (default) or by value.</summary>
    public GradientClipAlgorithm GradientClipAlgorithm { get; init; } = GradientClipAlgorithm.Norm;

    /// <summary>Run this many batches of training, validation and test once, with no loggers or checkpoints: a smoke test. 0 = off.</summary>
    public int FastDevRun { get; init; }

    /// <summary>Train and validate on this many training batches (count) or this share (fraction), to check the model can overfit. 0 = off.</summary>
    public BatchLimit OverfitBatches { get; init; } = 0;

    /// <summary>Send step metrics to the loggers every this many training steps (default 50).</summary>
    public int LogEveryNSteps { get; init; } = 50;

    /// <summary>Add a default <see cref="ModelCheckpoint"/> when <see cref="Callbacks"/> holds none.</summary>
    public bool EnableCheckpointing { get; init; } = true;

    /// <summary>Show a console progress bar; it also stays off when the console output is redirected.</summary>
    public bool EnableProgressBar { get; init; } = true;

    /// <summary>Print a table of the module's layers and parameter counts when a fit starts.</summary>
    public bool EnableModelSummary { get; init; } = true;

    /// <summary>Where logs and checkpoints go when no logger or callback says otherwise (default: the current directory).</summary>
    public string? DefaultRootDir { get; init; }

    /// <summary>Use only deterministic algorithms in libtorch (<c>use_deterministic_algorithms</c>).</summary>
    public bool Deterministic { get; init; }

    /// <summary><c>"simple"</c>: time every hook and loop and print a table at the end. Null (default) for none.</summary>
    public string? Profiler { get; init; }

    /// <summary>Turn on autograd anomaly detection (slow; finds where NaNs come from).</summary>
    public bool DetectAnomaly { get; init; }

    /// <summary>Run the bare loop: no checkpointing, loggers, progress bar, summary, sanity check or <c>Log</c>; for overhead measurement.</summary>
    public bool Barebones { get; init; }

    /// <summary>Ask the datamodule for new data loaders every this many epochs (0 = never).</summary>
    public int ReloadDataloadersEveryNEpochs { get; init; }

    /// <summary>
    /// The loggers (Lightning's <c>logger</c>). Null gives the defaults, a <see cref="TensorBoardLogger"/> and a
    /// <see cref="CsvLogger"/> sharing <c>lightning_logs/version_N</c>; an empty list turns logging off.
    /// </summary>
    public IReadOnlyList<LightningLogger>? Loggers { get; init; }

    /// <summary>Callbacks to run, in order; checkpoint and monitoring callbacks run last.</summary>
    public IReadOnlyList<Callback> Callbacks { get; init; } = [];

    internal int ResolvedMaxEpochs => MaxEpochs ?? (MaxSteps == -1 ? 1000 : -1);

    internal void Validate()
    {
        if (MaxEpochs is < -1) Fail(nameof(MaxEpochs), MaxEpochs, "use a number of epochs of 0 or more, or -1 for no limit");
        if (MinEpochs is < 0) Fail(nameof(MinEpochs), MinEpochs, "it must be 0 or more");
        if (MaxSteps < -1) Fail(nameof(MaxSteps), MaxSteps, "use a number of steps of 0 or more, or -1 for no limit");
        if (MinSteps is < 0) Fail(nameof(MinSteps), MinSteps, "it must be 0 or more");
        if (MaxTime is { } time && time <= TimeSpan.Zero) Fail(nameof(MaxTime), MaxTime, "it must be a positive duration");
        if (MinEpochs is { } minEpochs && MaxEpochs is { } maxEpochs && maxEpochs != -1 && minEpochs > maxEpochs)
            Fail(nameof(MinEpochs), minEpochs, $"it must not exceed MaxEpochs = {maxEpochs}");
        LimitTrainBatches.Validate(nameof(LimitTrainBatches));
        LimitValBatches.Validate(nameof(LimitValBatches));
        LimitTestBatches.Validate(nameof(LimitTestBatches));
        LimitPredictBatches.Validate(nameof(LimitPredictBatches));
        OverfitBatches.Validate(nameof(OverfitBatches));
        ValCheckInterval.Validate(nameof(ValCheckInterval));
        if (ValCheckInterval.Count is 0) Fail(nameof(ValCheckInterval), 0, "a batch count must be 1 or more");
        if (ValCheckInterval.Fraction is 0) Fail(nameof(ValCheckInterval), 0.0, "a fraction must be greater than 0.0");
        if (CheckValEveryNEpoch is < 1) Fail(nameof(CheckValEveryNEpoch), CheckValEveryNEpoch, "it must be 1 or more, or null for step-driven validation");
        if (CheckValEveryNEpoch is null && ValCheckInterval.Count is null)
            Fail(nameof(CheckValEveryNEpoch), "null", "step-driven validation needs ValCheckInterval as a batch count");
        if (NumSanityValSteps < -1) Fail(nameof(NumSanityValSteps), NumSanityValSteps, "it must be 0 or more, or -1 for all");
        if (NumNodes < 1) Fail(nameof(NumNodes), NumNodes, "it must be 1 or more");
        Strategy.Validate();
        Precision.Validate();
        MemoryLayout.Validate(nameof(MemoryFormat), MemoryFormat);
        if (NumNodes > 1 && !Strategy.SpansNodes) Fail(nameof(NumNodes), NumNodes, $"several nodes need Strategy = \"ddp\" or \"ddp_sharded\" (Strategy is \"{Strategy}\")");
        if (DistributedTimeout <= TimeSpan.Zero) Fail(nameof(DistributedTimeout), DistributedTimeout, "it must be a positive duration");
        if (AccumulateGradBatches < 1) Fail(nameof(AccumulateGradBatches), AccumulateGradBatches, "it must be 1 or more");
        if (GradientClipVal is { } clip && (clip <= 0 || double.IsNaN(clip))) Fail(nameof(GradientClipVal), clip, "it must be greater than 0, or null for no clipping");
        if (FastDevRun < 0) Fail(nameof(FastDevRun), FastDevRun, "it must be 0 (off) or a number of batches");
        if (LogEveryNSteps < 1) Fail(nameof(LogEveryNSteps), LogEveryNSteps, "it must be 1 or more");
        if (Profiler is not (null or "simple")) Fail(nameof(Profiler), $"\"{Profiler}\"", "the profilers are null and \"simple\"");
        if (ReloadDataloadersEveryNEpochs < 0) Fail(nameof(ReloadDataloadersEveryNEpochs), ReloadDataloadersEveryNEpochs, "it must be 0 (never) or more");
        if (Callbacks.Any(c => c is null)) throw new ArgumentException($"{nameof(Callbacks)} contains null; every entry must be a callback.", nameof(Callbacks));
        if (Loggers?.Any(l => l is null) == true) throw new ArgumentException($"{nameof(Loggers)} contains null; every entry must be a logger.", nameof(Loggers));
        if (Barebones)
        {
            if (Loggers is { Count: > 0 }) Conflict(nameof(Loggers), "loggers");
            if (Callbacks.Any(c => c is ModelCheckpoint)) Conflict(nameof(Callbacks), "a ModelCheckpoint");
            if (Callbacks.Any(c => c is ProgressBar)) Conflict(nameof(Callbacks), "a ProgressBar");
        }
        if (!EnableCheckpointing && Callbacks.Any(c => c is ModelCheckpoint))
            throw new ArgumentException(
                $"{nameof(EnableCheckpointing)} = false, but {nameof(Callbacks)} holds a ModelCheckpoint; remove one of them.", nameof(Callbacks));
        if (!EnableProgressBar && Callbacks.Any(c => c is ProgressBar))
            throw new ArgumentException(
                $"{nameof(EnableProgressBar)} = false, but {nameof(Callbacks)} holds a ProgressBar; remove one of them.", nameof(Callbacks));
    }

    private static void Fail(string option, object? value, string allowed) =>
        throw new ArgumentOutOfRangeException(option, value, $"{option} = {value} is not allowed: {allowed}.");

    private static void Conflict(string option, string what) =>
        throw new ArgumentException($"{nameof(Barebones)} = true turns off {what}, but {option} holds {what}; remove them or turn Barebones off.", option);
}
