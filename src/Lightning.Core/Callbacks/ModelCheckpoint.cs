using System.Text.Json.Nodes;

namespace Lightning.Callbacks;

/// <summary>
/// Saves a checkpoint at the end of every training epoch as <c>epoch={epoch}-step={step}.ckpt</c>, keeping only the
/// latest. The folder is <see cref="DirPath"/>, else the first logger's <c>version_N/checkpoints</c>, else
/// <c>&lt;DefaultRootDir&gt;/checkpoints</c>.
/// </summary>
public sealed class ModelCheckpoint : Callback
{
    /// <summary>Saves into <paramref name="dirPath"/>, or the default folder when null.</summary>
    public ModelCheckpoint(string? dirPath = null) => DirPath = dirPath;

    /// <summary>The folder checkpoints go to, once resolved.</summary>
    public string? DirPath { get; private set; }

    /// <summary>The path of the best checkpoint; without a monitored metric, the latest.</summary>
    public string? BestModelPath { get; private set; }

    /// <inheritdoc />
    protected internal override bool RunsLast => true;

    /// <summary>The path of the latest <c>last.ckpt</c>, when one is saved.</summary>
    public string? LastModelPath { get; private set; }

    /// <inheritdoc />
    public override void OnFitStart(Trainer trainer, LightningModule module) =>
        DirPath ??= trainer.Loggers.FirstOrDefault()?.LogDir is { } logDir
            ? Path.Combine(logDir, "checkpoints")
            : Path.Combine(trainer.DefaultRootDir, "checkpoints");

    /// <inheritdoc />
    public override void OnTrainEpochEnd(Trainer trainer, LightningModule module)
    {
        var path = Path.Combine(DirPath!, $"epoch={trainer.CurrentEpoch}-step={trainer.GlobalStep}.ckpt");
        var previous = BestModelPath;
        BestModelPath = path;
        trainer.SaveCheckpoint(path);
        if (previous is not null && previous != path) File.Delete(previous);
    }

    /// <inheritdoc />
    public override JsonObject SaveState() => new() { ["dirpath"] = DirPath, ["best_model_path"] = BestModelPath };

    /// <inheritdoc />
    public override void LoadState(JsonObject state)
    {
        DirPath = (string?)state["dirpath"] ?? DirPath;
        BestModelPath = (string?)state["best_model_path"];
    }
}
