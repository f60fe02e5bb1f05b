namespace Lightning.Loops;

/// <summary>The limits in force once FastDevRun, Barebones and OverfitBatches have overridden the plain flags.</summary>
internal sealed record EffectiveLimits(
    BatchLimit Train, BatchLimit Val, BatchLimit Test, BatchLimit Predict, int MaxEpochs, long MaxSteps, int SanitySteps,
    bool ValidateOnTrainData, bool LoggingOff, bool Checkpointing, bool ProgressBar, bool ModelSummary)
{
    public static EffectiveLimits From(TrainerOptions o)
    {
        if (o.FastDevRun > 0)
        {
            // Lightning's fast_dev_run: n batches of each loop, one epoch, nothing written.
            var n = o.FastDevRun;
            return new(n, n, n, n, 1, n, 0, false, true, false, o.EnableProgressBar && !o.Barebones, false);
        }
        var overfit = o.OverfitBatches.Count > 0 || o.OverfitBatches.Fraction > 0;
        return new(
            overfit ? o.OverfitBatches : o.LimitTrainBatches,
            overfit ? o.OverfitBatches : o.LimitValBatches,
            o.LimitTestBatches, o.LimitPredictBatches, o.ResolvedMaxEpochs, o.MaxSteps,
            o.Barebones ? 0 : o.NumSanityValSteps,
            overfit,
            LoggingOff: o.Barebones || o.Loggers is { Count: 0 },
            Checkpointing: o.EnableCheckpointing && !o.Barebones,
            ProgressBar: o.EnableProgressBar && !o.Barebones,
            ModelSummary: o.EnableModelSummary && !o.Barebones);
    }
}
