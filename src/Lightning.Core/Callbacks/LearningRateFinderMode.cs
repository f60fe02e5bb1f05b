namespace Lightning.Callbacks;

/// <summary>How <see cref="LearningRateFinder"/> raises the learning rate from one batch to the next.</summary>
public enum LearningRateFinderMode
{
    /// <summary>By a constant factor: evenly spaced on a log scale.</summary>
    Exponential,
    /// <summary>By a constant amount.</summary>
    Linear,
}
