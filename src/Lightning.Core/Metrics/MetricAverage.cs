namespace Lightning.Metrics;

/// <summary>How per-class scores of a multiclass metric become one value (torchmetrics' <c>average</c>).</summary>
public enum MetricAverage
{
    /// <summary>Counts summed over classes first, then scored once: every sample weighs the same.</summary>
    Micro,
    /// <summary>Scored per class, then the plain mean over the classes that occur (in targets or predictions): every class weighs the same.</summary>
    Macro,
}
