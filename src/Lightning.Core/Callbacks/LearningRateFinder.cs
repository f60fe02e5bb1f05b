using System.Globalization;
using Lightning.Strategies;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lightning.Callbacks;

/// <summary>
/// A learning-rate range test before training, as Lightning's <c>LearningRateFinder</c>: when the fit starts it trains
/// up to <see cref="NumTraining"/> batches while raising the learning rate from <see cref="MinLr"/> to <see cref="MaxLr"/>,
/// records the smoothed loss, stops early once the loss diverges, then restores the weights, the optimizer state and
/// the random generator exactly, and suggests the learning rate where the loss fell fastest
/// (<see cref="SuggestedLr"/>); with <see cref="UpdateAttr"/> the optimizer trains with it.
/// </summary>
/// <remarks>
/// <para>The loss is smoothed as Lightning does: <c>avg = 0.98 avg + 0.02 loss</c>, reported as <c>avg / (1 - 0.98^(s + 1))</c>
/// after optimizer step <c>s</c> (1-based). The search stops when the smoothed loss exceeds
/// <see cref="EarlyStopThreshold"/> times the best one so far, or is no longer finite.</para>
/// <para>The search needs one optimizer and automatic optimization. It is skipped with <c>FastDevRun</c>, as in
/// Lightning. It runs once per fit, before the sanity validation.</para>
/// </remarks>
public sealed class LearningRateFinder : Callback
{
    private const double Beta = 0.98;

    /// <summary>A learning-rate finder with Lightning's defaults.</summary>
    /// <param name="minLr">The learning rate of the first batch; positive.</param>
    /// <param name="maxLr">The learning rate of the last batch; above <paramref name="minLr"/>.</param>
    /// <param name="numTraining">Batches to train at most, each with the next learning rate; 1 or more.</param>
    /// <param name="mode">How the learning rate grows between batches.</param>
    /// <param name="earlyStopThreshold">Stop once the smoothed loss exceeds this many times the best so far; null never stops early.</param>
    /// <param name="updateAttr">Set the suggested learning rate on the optimizers for the fit (Lightning's <c>update_attr</c>).</param>
    /// <exception cref="ArgumentOutOfRangeException">A value is outside what is allowed; the message names it.</exception>
    public LearningRateFinder(double minLr = 1e-8, double maxLr = 1, int numTraining = 100,
        LearningRateFinderMode mode = LearningRateFinderMode.Exponential, double? earlyStopThreshold = 4.0, bool updateAttr = true)
    {
        var inv = CultureInfo.InvariantCulture;
        if (!(minLr > 0) || double.IsInfinity(minLr))
            throw new ArgumentOutOfRangeException(nameof(minLr), minLr, $"minLr = {minLr.ToString(inv)} is not allowed: it must be a positive learning rate.");
        if (!(maxLr > minLr) || double.IsInfinity(maxLr))
            throw new ArgumentOutOfRangeException(nameof(maxLr), maxLr,
                $"maxLr = {maxLr.ToString(inv)} is not allowed: it must be a finite learning rate above minLr = {minLr.ToString(inv)}.");
        if (numTraining < 1)
            throw new ArgumentOutOfRangeException(nameof(numTraining), numTraining, $"numTraining = {numTraining} is not allowed: it must be 1 or more.");
        if (!Enum.IsDefined(mode))
            throw new ArgumentOutOfRangeException(nameof(mode), mode,
                $"mode = {mode} is not allowed: it must be one of {string.Join(", ", Enum.GetNames<LearningRateFinderMode>())}.");
        if (earlyStopThreshold is { } threshold && !(threshold > 0))
            throw new ArgumentOutOfRangeException(nameof(earlyStopThreshold), threshold,
                $"earlyStopThreshold = {threshold.ToString(inv)} is not allowed: it must be positive, or null to never stop early.");
        (MinLr, MaxLr, NumTraining, Mode, EarlyStopThreshold, UpdateAttr) = (minLr, maxLr, numTraining, mode, earlyStopThreshold, updateAttr);
    }

    /// <summary>The learning rate of the first batch.</summary>
    public double MinLr { get; }

    /// <summary>The learning rate of the last batch, if the search gets there.</summary>
    public double MaxLr { get; }

    /// <summary>Batches the search trains at most.</summary>
    public int NumTraining { get; }

    /// <summary>How the learning rate grows.</summary>
    public LearningRateFinderMode Mode { get; }

    /// <summary>The divergence factor that ends the search early, if any.</summary>
    public double? EarlyStopThreshold { get; }

    /// <summary>Whether the suggestion becomes the optimizers' learning rate.</summary>
    public bool UpdateAttr { get; }

    /// <summary>The learning rates and smoothed losses of the last search; null before one ran.</summary>
    public LearningRateFinderResults? Results { get; private set; }

    /// <summary><see cref="Suggestion"/> with its defaults for the last search; null before one ran or without enough finite losses.</summary>
    public double? SuggestedLr { get; private set; }

    /// <summary>
    /// The learning rate where the smoothed loss falls fastest: the most negative gradient of the loss with respect to the
    /// learning rate (second-order differences inside, first-order at the ends, as <c>torch.gradient</c>), over the finite
    /// losses left after skipping the first <paramref name="skipBegin"/> and last <paramref name="skipEnd"/> points
    /// (Lightning's <c>suggestion()</c>). Null when fewer than 2 points remain.
    /// </summary>
    /// <param name="skipBegin">Points skipped at the start, whose estimates are naive.</param>
    /// <param name="skipEnd">Points skipped at the end, whose estimates are too optimistic.</param>
    public double? Suggestion(int skipBegin = 10, int skipEnd = 1)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(skipBegin);
        ArgumentOutOfRangeException.ThrowIfNegative(skipEnd);
        if (Results is not { } results) return null;
        var (lrs, losses) = (results.LearningRates, results.Losses);
        var points = Enumerable.Range(skipBegin, Math.Max(0, losses.Count - skipEnd - skipBegin))
            .Where(i => double.IsFinite(losses[i])).ToList();
        if (points.Count < 2) return null;

        int best = 0;
        double steepest = double.PositiveInfinity;
        for (int k = 0; k < points.Count; k++)
        {
            double gradient;
            if (k == 0) gradient = Slope(points[0], points[1]);
            else if (k == points.Count - 1) gradient = Slope(points[k - 1], points[k]);
            else
            {
                double x0 = lrs[points[k - 1]], x1 = lrs[points[k]], x2 = lrs[points[k + 1]];
                double f0 = losses[points[k - 1]], f1 = losses[points[k]], f2 = losses[points[k + 1]];
                double h1 = x1 - x0, h2 = x2 - x1;
                gradient = (h1 * h1 * f2 - h2 * h2 * f0 + (h2 * h2 - h1 * h1) * f1) / (h1 * h2 * (h1 + h2));
            }
            if (gradient < steepest)
            {
                steepest = gradient;
                best = k;
            }
        }
        return lrs[points[best]];

        double Slope(int a, int b) => (losses[b] - losses[a]) / (lrs[b] - lrs[a]);
    }

    /// <summary>The learning rate of search batch <paramref name="index"/> (0-based), as Lightning's schedulers for the search.</summary>
    /// <param name="index">The batch's index in the search.</param>
    public double LearningRateAt(int index)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(index);
        if (index == 0) return MinLr;
        var r = (double)(index + 1) / NumTraining;
        return Mode == LearningRateFinderMode.Exponential ? MinLr * Math.Pow(MaxLr / MinLr, r) : MinLr + r * (MaxLr - MinLr);
    }

    /// <summary>Runs the search when the fit starts, before the sanity validation (skipped with <c>FastDevRun</c>).</summary>
    public override void OnFitStart(Trainer trainer, LightningModule module)
    {
        if (trainer.Options.FastDevRun > 0 || trainer.FitLoop is not { } loop) return;
        Search(trainer, module, loop);
    }

    private void Search(Trainer trainer, LightningModule module, Loops.FitLoop loop)
    {
        if (trainer.Optimizers.Count != 1)
            throw new InvalidOperationException(
                $"{nameof(LearningRateFinder)} works with exactly 1 optimizer; ConfigureOptimizers returned {trainer.Optimizers.Count}.");
        if (!module.AutomaticOptimization)
            throw new InvalidOperationException($"{nameof(LearningRateFinder)} needs automatic optimization; the module sets AutomaticOptimization = false.");
        var optimizer = trainer.Optimizers[0];
        if (optimizer is not OptimizerHelper helper)
            throw new NotSupportedException(
                $"{nameof(LearningRateFinder)} restores the optimizer's state after the search, which {optimizer.GetType().Name} cannot save; use one of TorchSharp's built-in optimizers.");

        var weights = new Dictionary<string, Tensor>();
        using (no_grad())
            foreach (var (name, value) in module.state_dict())
                weights[name] = value.detach().clone().DetachFromDisposeScope();
        byte[] optimizerState;
        using (var buffer = new MemoryStream())
        {
            using (var writer = new BinaryWriter(buffer, System.Text.Encoding.UTF8, leaveOpen: true))
            using (MemoryLayout.ContiguousState(helper))
                helper.save_state_dict(writer);
            optimizerState = buffer.ToArray();
        }
        var rng = LightningSeed.GetRngState().DetachFromDisposeScope();
        var wasTraining = module.training;

        var lrs = new List<double>();
        var losses = new List<double>();
        double average = 0, best = 0;
        long steps = 0;
        try
        {
            SetLearningRate(optimizer, MinLr);
            loop.RunTuningSteps(NumTraining,
                beforeBatch: index =>
                {
                    var lr = LearningRateAt(index);
                    SetLearningRate(optimizer, lr);
                    lrs.Add(lr);
                },
                afterBatch: (_, loss) =>
                {
                    if (loss is not { } value)
                    {
                        losses.Add(double.NaN);
                        return true;
                    }
                    steps++;
                    average = Beta * average + (1 - Beta) * value;
                    var smoothed = average / (1 - Math.Pow(Beta, steps + 1));
                    var diverged = EarlyStopThreshold is { } threshold && steps > 1
                        && (smoothed > threshold * best || !double.IsFinite(smoothed));
                    if (smoothed < best || steps == 1) best = smoothed;
                    losses.Add(smoothed);
                    return !diverged;
                });
        }
        finally
        {
            // Leave no trace: weights and buffers, optimizer state (its learning rates included), random state.
            using (no_grad())
            {
                var state = module.state_dict();
                foreach (var (name, saved) in weights)
                {
                    state[name].copy_(saved);
                    saved.Dispose();
                }
            }
            MemoryLayout.MakeStateContiguous(helper);
            using (var reader = new BinaryReader(new MemoryStream(optimizerState, writable: false))) helper.load_state_dict(reader);
            LightningSeed.SetRngState(rng);
            rng.Dispose();
            module.train(wasTraining);
        }

        Results = new LearningRateFinderResults(lrs, losses);
        SuggestedLr = Suggestion();
        if (UpdateAttr && SuggestedLr is { } suggested)
            foreach (var each in trainer.Optimizers) SetLearningRate(each, suggested);
    }

    private static void SetLearningRate(optim.Optimizer optimizer, double lr)
    {
        foreach (var group in optimizer.ParamGroups) group.LearningRate = lr;
    }
}
