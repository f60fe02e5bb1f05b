using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lightning.Loggers;

/// <summary>
/// Writes scalars to a TensorBoard event file (<c>events.out.tfevents.*</c>) and hyperparameters to
/// <c>hparams.yaml</c>; when the run ends, the hyperparameters and the names of the logged metrics go to TensorBoard's
/// hparams plugin as well, so its HPARAMS tab lists the run with its final metrics. View with
/// <c>tensorboard --logdir lightning_logs</c>. Weight histograms are opt-in: add the <see cref="Callbacks.WeightHistograms"/> callback.
/// </summary>
public sealed class TensorBoardLogger : LightningLogger
{
    private SummaryWriter? _writer;
    private IReadOnlyDictionary<string, object?>? _hparams;
    private readonly SortedSet<string> _metrics = new(StringComparer.Ordinal);
    private long _lastStep;

    /// <summary>Logs to <paramref name="saveDir"/>/<paramref name="name"/>/version_N.</summary>
    public TensorBoardLogger(string saveDir, string name = "lightning_logs", int? version = null) : base(saveDir, name, version) { }

    /// <inheritdoc />
    public override void LogMetrics(IReadOnlyDictionary<string, double> metrics, long step)
    {
        // SummaryWriter appends each event to the file as it comes, so nothing is lost if the run dies.
        var writer = Writer();
        foreach (var (name, value) in metrics)
        {
            writer.add_scalar(name, (float)value, checked((int)step));
            if (name != "epoch") _metrics.Add(name);
        }
        _lastStep = Math.Max(_lastStep, step);
    }

    /// <inheritdoc />
    public override void LogHyperparams(IReadOnlyDictionary<string, object?> hparams)
    {
        ArgumentNullException.ThrowIfNull(hparams);
        HparamsYaml.Write(LogDir, hparams);
        _hparams = new Dictionary<string, object?>(hparams);
    }

    /// <summary>A histogram of <paramref name="values"/> under <paramref name="tag"/> at <paramref name="step"/> (TensorBoard's HISTOGRAMS and DISTRIBUTIONS tabs).</summary>
    public void LogHistogram(string tag, Tensor values, long step)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(tag);
        ArgumentNullException.ThrowIfNull(values);
        using var host = values.detach().to(ScalarType.Float64, CPU).flatten();
        Writer().add_histogram(tag, host, checked((int)step));
    }

    /// <summary>Writes the hparams plugin's entry for the run (hyperparameters, metric names, status), then ends as the base does.</summary>
    public override void Complete(RunStatus status)
    {
        if (_hparams is not null) HparamsEvents.Write(LogDir, _hparams, _metrics, status, _lastStep);
        base.Complete(status);
    }

    private SummaryWriter Writer() => _writer ??= utils.tensorboard.SummaryWriter(LogDir, createRunName: false);
}
