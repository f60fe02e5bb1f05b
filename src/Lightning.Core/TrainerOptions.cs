using Lightning.Callbacks;
using Lightning.Loggers;

namespace Lightning;

/// <summary>The flags of a <see cref="Trainer"/>, as Lightning's <c>Trainer(...)</c> arguments. Validated when the trainer is built.</summary>
public sealed class TrainerOptions
{
    /// <summary>Stop after this many epochs (Lightning's <c>max_epochs</c>; default 1000).</summary>
    public int MaxEpochs { get; init; } = 1000;

    /// <summary>How many training batches to run per epoch: a count or a fraction (default: all).</summary>
    public BatchLimit LimitTrainBatches { get; init; } = BatchLimit.All;

    /// <summary>Where logs and checkpoints go when no logger or callback says otherwise (default: the current directory).</summary>
    public string? DefaultRootDir { get; init; }

    /// <summary>Show a console progress bar; it also stays off when the console output is redirected.</summary>
    public bool EnableProgressBar { get; init; } = true;

    /// <summary>Add a default <see cref="ModelCheckpoint"/> when <see cref="Callbacks"/> holds none.</summary>
    public bool EnableCheckpointing { get; init; } = true;

    /// <summary>
    /// The loggers (Lightning's <c>logger</c>). Null gives the defaults, a <see cref="TensorBoardLogger"/> and a
    /// <see cref="CsvLogger"/> sharing <c>lightning_logs/version_N</c>; an empty list turns logging off.
    /// </summary>
    public IReadOnlyList<LightningLogger>? Loggers { get; init; }

    /// <summary>Callbacks to run, in order; checkpoint callbacks always run last.</summary>
    public IReadOnlyList<Callback> Callbacks { get; init; } = [];

    /// <summary>Send step metrics to the loggers every this many training steps (default 50).</summary>
    public int LogEveryNSteps { get; init; } = 50;

    internal void Validate()
    {
        if (MaxEpochs < -1)
            throw new ArgumentOutOfRangeException(nameof(MaxEpochs), MaxEpochs,
                $"{nameof(MaxEpochs)} = {MaxEpochs} is not allowed: use a number of epochs of 0 or more, or -1 for no limit.");
        if (LogEveryNSteps < 1)
            throw new ArgumentOutOfRangeException(nameof(LogEveryNSteps), LogEveryNSteps,
                $"{nameof(LogEveryNSteps)} = {LogEveryNSteps} is not allowed: it must be 1 or more.");
        LimitTrainBatches.Validate(nameof(LimitTrainBatches));
        if (Callbacks.Any(c => c is null))
            throw new ArgumentException($"{nameof(Callbacks)} contains null; every entry must be a callback.", nameof(Callbacks));
        if (Loggers?.Any(l => l is null) == true)
            throw new ArgumentException($"{nameof(Loggers)} contains null; every entry must be a logger.", nameof(Loggers));
    }
}
