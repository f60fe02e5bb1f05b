namespace Lightning.Metrics;

/// <summary>The kind of classification a metric scores (torchmetrics' <c>task</c>).</summary>
public enum MetricTask
{
    /// <summary>Two classes: targets are 0 or 1; predictions are labels, probabilities or logits of class 1.</summary>
    Binary,
    /// <summary>One of <c>NumClasses</c> classes: targets are class ids; predictions are class ids or one score per class.</summary>
    Multiclass,
}
