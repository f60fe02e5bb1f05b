using System.Globalization;
using System.Text.Json.Nodes;
using Lightning.Checkpoints;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lightning.Callbacks;

/// <summary>
/// Stochastic Weight Averaging (Izmailov et al., 2018), as Lightning's <c>StochasticWeightAveraging</c>: from the SWA
/// start epoch to the last one, the learning rate of each parameter group anneals to its SWA rate over
/// <see cref="AnnealingEpochs"/> epochs (PyTorch's <c>SWALR</c>) and the weights at the end of each of those epochs
/// enter an equal-weight running average. When training ends the average replaces the module's parameters; a module
/// with BatchNorm layers gets one extra epoch, forward passes only, that recomputes their running statistics for the
/// averaged weights. The average and its counters are saved in checkpoints, so a resumed fit continues it.
/// </summary>
/// <remarks>
/// <para>One optimizer and at most one scheduler, as in Lightning. During the SWA epochs this callback sets the learning
/// rate before every batch, so it overrides the module's scheduler there (Lightning swaps the scheduler for <c>SWALR</c>).</para>
/// <para>Lightning updates the average at the <em>start</em> of each SWA epoch, so its average holds the weights from
/// the end of the epoch before the SWA start up to the next-to-last epoch. This callback averages the weights at the
/// <em>end</em> of the SWA start epoch through the last epoch, PyTorch's SWA recipe, so the last epoch counts.</para>
/// <para>The average holds detached tensors owned by this callback, released by <see cref="WeightAveraging.Dispose"/> or
/// when the next fit is set up.</para>
/// </remarks>
public sealed class StochasticWeightAveraging : WeightAveraging
{
    private readonly int? _epochStartNumber;
    private readonly double? _epochStartFraction;
    private int _latestUpdateEpoch = -1;
    private double[]? _initialLrs;
    private int _maxEpochs;
    private bool _hasBatchNorm;
    private bool _maxEpochsRaised;
    private bool _skippingBackward;
    private List<(BatchNorm Layer, double? Momentum)> _momenta = [];

    /// <summary>SWA with one rate for every parameter group, starting at a fraction of the epochs.</summary>
    /// <param name="swaLrs">The SWA learning rate, positive.</param>
    /// <param name="swaEpochStart">The start as a fraction in [0, 1] of <c>MaxEpochs</c>: SWA begins at epoch <c>int(MaxEpochs * fraction)</c> (1-based).</param>
    /// <param name="annealingEpochs">Epochs over which the learning rate moves to <paramref name="swaLrs"/>; 0 or more.</param>
    /// <param name="annealingStrategy">The shape of that move.</param>
    /// <exception cref="ArgumentOutOfRangeException">A value is outside what is allowed; the message names it.</exception>
    public StochasticWeightAveraging(double swaLrs, double swaEpochStart = 0.8, int annealingEpochs = 10,
        SwaAnnealingStrategy annealingStrategy = SwaAnnealingStrategy.Cos)
        : this([swaLrs], null, swaEpochStart, annealingEpochs, annealingStrategy) { }

    /// <summary>SWA with one rate for every parameter group, starting at an epoch number.</summary>
    /// <param name="swaLrs">The SWA learning rate, positive.</param>
    /// <param name="swaEpochStart">The 1-based epoch SWA begins with (Lightning's integer <c>swa_epoch_start</c>), 1 or more.</param>
    /// <param name="annealingEpochs">Epochs over which the learning rate moves to <paramref name="swaLrs"/>; 0 or more.</param>
    /// <param name="annealingStrategy">The shape of that move.</param>
    /// <exception cref="ArgumentOutOfRangeException">A value is outside what is allowed; the message names it.</exception>
    public StochasticWeightAveraging(double swaLrs, int swaEpochStart, int annealingEpochs = 10,
        SwaAnnealingStrategy annealingStrategy = SwaAnnealingStrategy.Cos)
        : this([swaLrs], swaEpochStart, null, annealingEpochs, annealingStrategy) { }

    /// <summary>SWA with a rate per parameter group, starting at a fraction of the epochs.</summary>
    /// <param name="swaLrs">One positive SWA learning rate per parameter group of the optimizer.</param>
    /// <param name="swaEpochStart">The start as a fraction in [0, 1] of <c>MaxEpochs</c>: SWA begins at epoch <c>int(MaxEpochs * fraction)</c> (1-based).</param>
    /// <param name="annealingEpochs">Epochs over which the learning rates move to <paramref name="swaLrs"/>; 0 or more.</param>
    /// <param name="annealingStrategy">The shape of that move.</param>
    /// <exception cref="ArgumentOutOfRangeException">A value is outside what is allowed; the message names it.</exception>
    public StochasticWeightAveraging(IReadOnlyList<double> swaLrs, double swaEpochStart = 0.8, int annealingEpochs = 10,
        SwaAnnealingStrategy annealingStrategy = SwaAnnealingStrategy.Cos)
        : this(swaLrs, null, swaEpochStart, annealingEpochs, annealingStrategy) { }

    /// <summary>SWA with a rate per parameter group, starting at an epoch number.</summary>
    /// <param name="swaLrs">One positive SWA learning rate per parameter group of the optimizer.</param>
    /// <param name="swaEpochStart">The 1-based epoch SWA begins with (Lightning's integer <c>swa_epoch_start</c>), 1 or more.</param>
    /// <param name="annealingEpochs">Epochs over which the learning rates move to <paramref name="swaLrs"/>; 0 or more.</param>
    /// <param name="annealingStrategy">The shape of that move.</param>
    /// <exception cref="ArgumentOutOfRangeException">A value is outside what is allowed; the message names it.</exception>
    public StochasticWeightAveraging(IReadOnlyList<double> swaLrs, int swaEpochStart, int annealingEpochs = 10,
        SwaAnnealingStrategy annealingStrategy = SwaAnnealingStrategy.Cos)
        : this(swaLrs, swaEpochStart, null, annealingEpochs, annealingStrategy) { }

    private StochasticWeightAveraging(IReadOnlyList<double> swaLrs, int? epochStartNumber, double? epochStartFraction,
        int annealingEpochs, SwaAnnealingStrategy annealingStrategy)
        : base(includeBuffers: false, averageBuffers: false)
    {
        ArgumentNullException.ThrowIfNull(swaLrs);
        var inv = CultureInfo.InvariantCulture;
        if (swaLrs.Count == 0 || swaLrs.Any(lr => !(lr > 0) || double.IsInfinity(lr)))
            throw new ArgumentOutOfRangeException(nameof(swaLrs), string.Join(", ", swaLrs.Select(lr => lr.ToString(inv))),
                $"swaLrs = [{string.Join(", ", swaLrs.Select(lr => lr.ToString(inv)))}] is not allowed: it must be a positive learning rate, or one per parameter group.");
        if (epochStartNumber is < 1)
            throw new ArgumentOutOfRangeException("swaEpochStart", epochStartNumber,
                $"swaEpochStart = {epochStartNumber} is not allowed: an epoch number must be 1 or more (1-based), or pass a fraction in [0, 1] of MaxEpochs.");
        if (epochStartFraction is { } fraction && !(fraction >= 0 && fraction <= 1))
            throw new ArgumentOutOfRangeException("swaEpochStart", fraction,
                $"swaEpochStart = {fraction.ToString(inv)} is not allowed: a fraction of MaxEpochs must be between 0 and 1, or pass an epoch number (int) of 1 or more.");
        if (annealingEpochs < 0)
            throw new ArgumentOutOfRangeException(nameof(annealingEpochs), annealingEpochs,
                $"annealingEpochs = {annealingEpochs} is not allowed: it must be 0 or more.");
        if (!Enum.IsDefined(annealingStrategy))
            throw new ArgumentOutOfRangeException(nameof(annealingStrategy), annealingStrategy,
                $"annealingStrategy = {annealingStrategy} is not allowed: it must be one of {string.Join(", ", Enum.GetNames<SwaAnnealingStrategy>())}.");
        SwaLrs = swaLrs.ToArray();
        (_epochStartNumber, _epochStartFraction) = (epochStartNumber, epochStartFraction);
        (AnnealingEpochs, AnnealingStrategy) = (annealingEpochs, annealingStrategy);
    }

    /// <summary>The SWA learning rates: one for every group, or one per group.</summary>
    public IReadOnlyList<double> SwaLrs { get; }

    /// <summary>Epochs over which the learning rate moves to the SWA rate.</summary>
    public int AnnealingEpochs { get; }

    /// <summary>The shape of the learning-rate move.</summary>
    public SwaAnnealingStrategy AnnealingStrategy { get; }

    /// <summary>The first SWA epoch (0-based), known once training starts.</summary>
    public int? SwaStart { get; private set; }

    /// <summary>The last SWA epoch (0-based): the last epoch of <c>MaxEpochs</c>; known once training starts.</summary>
    public int? SwaEnd { get; private set; }

    /// <summary>The factor (0 to 1) by which the learning rate has moved to the SWA rate after <paramref name="epochsIntoSwa"/> SWA epochs (PyTorch's <c>SWALR</c>).</summary>
    /// <param name="epochsIntoSwa">SWA epochs before the current one (0 for the SWA start epoch).</param>
    public double AnnealingFactor(int epochsIntoSwa)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(epochsIntoSwa);
        var step = AnnealingEpochs == 0 ? Math.Max(1, epochsIntoSwa) : epochsIntoSwa;
        var t = Math.Clamp((double)step / Math.Max(1, AnnealingEpochs), 0, 1);
        return AnnealingStrategy == SwaAnnealingStrategy.Cos ? (1 - Math.Cos(Math.PI * t)) / 2 : t;
    }

    /// <inheritdoc />
    protected override void OnFitSetup(LightningModule module)
    {
        _latestUpdateEpoch = -1;
        _initialLrs = null;
    }

    /// <inheritdoc />
    public override void OnTrainStart(Trainer trainer, LightningModule module)
    {
        if (trainer.Optimizers.Count != 1)
            throw new InvalidOperationException(
                $"{nameof(StochasticWeightAveraging)} works with exactly 1 optimizer; ConfigureOptimizers returned {trainer.Optimizers.Count}.");
        if (trainer.LrSchedulerConfigs.Count > 1)
            throw new InvalidOperationException(
                $"{nameof(StochasticWeightAveraging)} works with at most 1 learning-rate scheduler; ConfigureOptimizers returned {trainer.LrSchedulerConfigs.Count}.");
        if (trainer.MaxEpochs < 1)
            throw new InvalidOperationException(
                $"{nameof(StochasticWeightAveraging)} needs an epoch limit to find its last epoch; MaxEpochs = {trainer.MaxEpochs}. Set TrainerOptions.MaxEpochs.");
        var groups = trainer.Optimizers[0].ParamGroups.Count();
        if (SwaLrs.Count != 1 && SwaLrs.Count != groups)
            throw new InvalidOperationException(
                $"swaLrs has {SwaLrs.Count} learning rates but the optimizer has {groups} parameter group(s); give one rate, or one per group.");

        _maxEpochs = trainer.MaxEpochs;
        var startNumber = _epochStartNumber ?? (int)(_maxEpochs * _epochStartFraction!.Value);
        SwaStart = Math.Max(startNumber - 1, 0);
        SwaEnd = _maxEpochs - 1;
        _hasBatchNorm = module.modules().OfType<BatchNorm>().Any();
        _maxEpochsRaised = false;
        if (_hasBatchNorm)
        {
            // One more epoch, forward passes only, recomputes the BatchNorm statistics for the averaged weights.
            trainer.FitLoop!.MaxEpochs += 1;
            _maxEpochsRaised = true;
        }
    }

    /// <inheritdoc />
    public override void OnTrainEpochStart(Trainer trainer, LightningModule module)
    {
        var epoch = trainer.CurrentEpoch;
        if (InSwa(epoch))
        {
            _initialLrs ??= trainer.Optimizers[0].ParamGroups.Select(g => g.LearningRate).ToArray();
            SetLearningRates(trainer, epoch);
        }
        else if (_hasBatchNorm && epoch == SwaEnd + 1 && HasAverage)
        {
            CopyAverageInto(module);
            ResetBatchNorm(module);
            trainer.FitLoop!.SkipBackward = true;
            _skippingBackward = true;
        }
    }

    /// <inheritdoc />
    public override void OnTrainBatchStart(Trainer trainer, LightningModule module, object? batch, int batchIdx)
    {
        // Set before every batch so a step-interval scheduler cannot move it during SWA epochs.
        if (InSwa(trainer.CurrentEpoch) && _initialLrs is not null) SetLearningRates(trainer, trainer.CurrentEpoch);
    }

    /// <inheritdoc />
    public override void OnTrainEpochEnd(Trainer trainer, LightningModule module)
    {
        if (_skippingBackward)
        {
            trainer.FitLoop!.SkipBackward = false;
            _skippingBackward = false;
        }
        var epoch = trainer.CurrentEpoch;
        if (InSwa(epoch) && epoch > _latestUpdateEpoch)
        {
            UpdateAverage(module);
            _latestUpdateEpoch = epoch;
        }
    }

    /// <inheritdoc />
    public override void OnTrainEnd(Trainer trainer, LightningModule module)
    {
        // The trainer has counted the last epoch already: CurrentEpoch - 1 is the epoch that ran last.
        var last = trainer.CurrentEpoch - 1;
        if (_hasBatchNorm && last == SwaEnd + 1)
            RestoreMomenta();
        else if (last == SwaEnd && HasAverage)
            CopyAverageInto(module);
        if (_maxEpochsRaised)
        {
            trainer.FitLoop!.MaxEpochs -= 1;
            _maxEpochsRaised = false;
        }
    }

    /// <inheritdoc />
    public override void OnException(Trainer trainer, LightningModule module, Exception exception)
    {
        base.OnException(trainer, module, exception);
        RestoreMomenta();
        if (_skippingBackward)
        {
            trainer.FitLoop!.SkipBackward = false;
            _skippingBackward = false;
        }
        if (_maxEpochsRaised)
        {
            trainer.FitLoop!.MaxEpochs -= 1;
            _maxEpochsRaised = false;
        }
    }

    /// <inheritdoc />
    protected override void SaveCounters(JsonObject state)
    {
        state["latest_update_epoch"] = _latestUpdateEpoch;
        state["initial_lrs"] = _initialLrs is null ? null : new JsonArray(_initialLrs.Select(lr => (JsonNode)lr).ToArray());
    }

    /// <inheritdoc />
    protected override void LoadCounters(JsonObject state)
    {
        _latestUpdateEpoch = (int?)state["latest_update_epoch"] ?? -1;
        _initialLrs = state["initial_lrs"] is JsonArray lrs ? lrs.Select(lr => (double)lr!).ToArray() : null;
    }

    /// <summary>Lightning's key for SWA's average.</summary>
    protected override string AverageStateKey => "average_model_state";

    /// <summary>An equal-weight running mean: each epoch's weights count as much as every earlier one.</summary>
    protected override void Blend(Tensor average, Tensor value) => average.copy_(average + (value - average) / (AveragedCount + 1));

    private bool InSwa(int epoch) => SwaStart is { } start && epoch >= start && epoch <= SwaEnd;

    private void SetLearningRates(Trainer trainer, int epoch)
    {
        var alpha = AnnealingFactor(epoch - SwaStart!.Value);
        int i = 0;
        foreach (var group in trainer.Optimizers[0].ParamGroups)
        {
            var swaLr = SwaLrs[SwaLrs.Count == 1 ? 0 : i];
            var initial = _initialLrs![Math.Min(i, _initialLrs.Length - 1)];
            group.LearningRate = swaLr * alpha + initial * (1 - alpha);
            i++;
        }
    }

    private void ResetBatchNorm(LightningModule module)
    {
        _momenta = [];
        foreach (var layer in module.modules().OfType<BatchNorm>())
        {
            if (layer.running_mean is null || layer.running_var is null) continue;
            _momenta.Add((layer, layer.momentum));
            layer.reset_running_stats();
            // No momentum: a cumulative average over the epoch's batches.
            layer.momentum = null;
        }
    }

    private void RestoreMomenta()
    {
        foreach (var (layer, momentum) in _momenta) layer.momentum = momentum;
        _momenta = [];
    }
}
