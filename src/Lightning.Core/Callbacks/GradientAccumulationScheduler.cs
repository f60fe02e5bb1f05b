namespace Lightning.Callbacks;

/// <summary>
/// Changes how many batches' gradients are accumulated per optimizer step as training goes on, as Lightning's
/// <c>GradientAccumulationScheduler</c>: <c>{0: 8, 4: 4}</c> accumulates 8 batches from epoch 0 and 4 from epoch 4.
/// Epochs before the first key accumulate 1 batch. It sets <see cref="Trainer.AccumulateGradBatches"/> at the start of
/// every training epoch.
/// </summary>
/// <remarks>
/// Automatic optimization only, and not together with <see cref="TrainerOptions.AccumulateGradBatches"/> other than 1:
/// both are reported when training starts.
/// </remarks>
/// <example><code>
/// var trainer = new Trainer(new TrainerOptions
/// {
///     Callbacks = [new GradientAccumulationScheduler(new Dictionary&lt;int, int&gt; { [0] = 8, [4] = 4 })],
/// });
/// </code></example>
public sealed class GradientAccumulationScheduler : Callback
{
    private readonly SortedDictionary<int, int> _scheduling;

    /// <summary>Accumulates <c>scheduling[e]</c> batches from epoch <c>e</c> on, until the next key.</summary>
    /// <param name="scheduling">Epoch (0 or more) → batches per optimizer step (1 or more); at least one entry.</param>
    public GradientAccumulationScheduler(IReadOnlyDictionary<int, int> scheduling)
    {
        ArgumentNullException.ThrowIfNull(scheduling);
        if (scheduling.Count == 0)
            throw new ArgumentException("scheduling is empty: give at least one epoch → factor pair, e.g. { [0] = 8, [4] = 4 }.", nameof(scheduling));
        foreach (var (epoch, factor) in scheduling)
        {
            if (epoch < 0)
                throw new ArgumentOutOfRangeException(nameof(scheduling), epoch,
                    $"scheduling has the epoch {epoch}, which is not allowed: epochs must be 0 or more.");
            if (factor < 1)
                throw new ArgumentOutOfRangeException(nameof(scheduling), factor,
                    $"scheduling[{epoch}] = {factor} is not allowed: accumulation factors must be 1 or more.");
        }
        _scheduling = new SortedDictionary<int, int>(scheduling.ToDictionary());
        // As Lightning: without an entry for epoch 0, the first epochs do not accumulate.
        _scheduling.TryAdd(0, 1);
    }

    /// <summary>The schedule, by first epoch, including the implicit <c>0 → 1</c> when none was given for epoch 0.</summary>
    public IReadOnlyDictionary<int, int> Scheduling => _scheduling;

    /// <summary>The number of batches accumulated per optimizer step in <paramref name="epoch"/>.</summary>
    public int GetAccumulateGradBatches(int epoch) => _scheduling.Last(e => e.Key <= Math.Max(epoch, 0)).Value;

    /// <summary>True when some epoch accumulates more than one batch.</summary>
    public bool AccumulatesGradients => _scheduling.Values.Any(factor => factor > 1);

    /// <inheritdoc />
    public override void OnTrainStart(Trainer trainer, LightningModule module)
    {
        if (!module.AutomaticOptimization)
            throw new InvalidOperationException(
                "GradientAccumulationScheduler works with automatic optimization only; with AutomaticOptimization = false, " +
                "accumulate in TrainingStep yourself, or remove the callback.");
        if (trainer.Options.AccumulateGradBatches != 1)
            throw new InvalidOperationException(
                $"AccumulateGradBatches = {trainer.Options.AccumulateGradBatches} and a GradientAccumulationScheduler are both set; " +
                "remove AccumulateGradBatches from the TrainerOptions (the scheduler decides) or remove the callback.");
    }

    /// <inheritdoc />
    public override void OnTrainEpochStart(Trainer trainer, LightningModule module) =>
        trainer.AccumulateGradBatches = GetAccumulateGradBatches(trainer.CurrentEpoch);
}
