namespace Lightning.Callbacks;

/// <summary>What a <see cref="LearningRateFinder"/> search recorded: the learning rate of each batch and the smoothed loss after it.</summary>
/// <param name="LearningRates">The learning rate each batch trained with.</param>
/// <param name="Losses">The smoothed training loss after each batch (NaN where the step returned no loss).</param>
public sealed record LearningRateFinderResults(IReadOnlyList<double> LearningRates, IReadOnlyList<double> Losses);
