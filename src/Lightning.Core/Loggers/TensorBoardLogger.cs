using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lightning.Loggers;

/// <summary>
/// Writes scalars to a TensorBoard event file (<c>events.out.tfevents.*</c>) and hyperparameters to
/// <c>hparams.yaml</c>. View with <c>tensorboard --logdir lightning_logs</c>.
/// </summary>
public sealed class TensorBoardLogger : LightningLogger
{
    private SummaryWriter? _writer;

    /// <summary>Logs to <paramref name="saveDir"/>/<paramref name="name"/>/version_N.</summary>
    public TensorBoardLogger(string saveDir, string name = "lightning_logs", int? version = null) : base(saveDir, name, version) { }

    /// <inheritdoc />
    public override void LogMetrics(IReadOnlyDictionary<string, double> metrics, long step)
    {
        // SummaryWriter appends each event to the file as it comes, so nothing is lost if the run dies.
        _writer ??= utils.tensorboard.SummaryWriter(LogDir, createRunName: false);
        foreach (var (name, value) in metrics)
            _writer.add_scalar(name, (float)value, checked((int)step));
    }

    /// <inheritdoc />
    public override void LogHyperparams(IReadOnlyDictionary<string, object?> hparams) => HparamsYaml.Write(LogDir, hparams);
}
