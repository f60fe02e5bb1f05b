namespace Lightning.Callbacks;

/// <summary>How <see cref="StochasticWeightAveraging"/> moves the learning rate to the SWA rate (PyTorch's <c>SWALR</c> <c>anneal_strategy</c>).</summary>
public enum SwaAnnealingStrategy
{
    /// <summary>Along half a cosine: <c>alpha = (1 - cos(pi * t)) / 2</c>.</summary>
    Cos,
    /// <summary>In a straight line: <c>alpha = t</c>.</summary>
    Linear,
}
