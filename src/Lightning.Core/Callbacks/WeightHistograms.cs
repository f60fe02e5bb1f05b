using Lightning.Loggers;

namespace Lightning.Callbacks;

/// <summary>
/// Opt-in weight histograms for TensorBoard: at the end of every <c>everyNEpochs</c>-th training epoch, each parameter
/// of the module goes to every <see cref="TensorBoardLogger"/> of the trainer as a histogram tagged
/// <c>weights/&lt;parameter name&gt;</c> (and its gradient as <c>gradients/&lt;name&gt;</c> when it has one), at the
/// global step.
/// </summary>
public sealed class WeightHistograms : Callback
{
    private readonly int _everyNEpochs;

    /// <summary>Histograms every <paramref name="everyNEpochs"/> epochs (default 1).</summary>
    public WeightHistograms(int everyNEpochs = 1)
    {
        if (everyNEpochs < 1)
            throw new ArgumentOutOfRangeException(nameof(everyNEpochs), everyNEpochs, $"everyNEpochs = {everyNEpochs} is not allowed: it must be 1 or more.");
        _everyNEpochs = everyNEpochs;
    }

    /// <inheritdoc />
    public override void OnTrainEpochEnd(Trainer trainer, LightningModule module)
    {
        ArgumentNullException.ThrowIfNull(trainer);
        ArgumentNullException.ThrowIfNull(module);
        if ((trainer.CurrentEpoch + 1) % _everyNEpochs != 0 || !trainer.IsGlobalZero) return;
        var loggers = trainer.Loggers.OfType<TensorBoardLogger>().ToList();
        if (loggers.Count == 0) return;
        foreach (var (name, parameter) in module.named_parameters())
        {
            using var grad = parameter.grad;
            foreach (var logger in loggers)
            {
                logger.LogHistogram($"weights/{name}", parameter, trainer.GlobalStep);
                if (grad is not null) logger.LogHistogram($"gradients/{name}", grad, trainer.GlobalStep);
            }
        }
    }
}
