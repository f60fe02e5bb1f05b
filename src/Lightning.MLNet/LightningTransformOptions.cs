namespace Lightning.MLNet;

/// <summary>Options of the Lightning transform (<c>mlContext.Transforms.Lightning(...)</c>).</summary>
public sealed record LightningTransformOptions
{
    /// <summary>The column the module reads: a known-size vector of <see cref="float"/>. Default <c>"Features"</c>.</summary>
    public string InputColumnName { get; init; } = "Features";

    /// <summary>The column the transform adds: each row's module output, flattened to a vector of <see cref="float"/>. Required.</summary>
    public string OutputColumnName { get; init; } = "";

    /// <summary>Rows per ONNX Runtime call when <c>Transform</c> scores many rows; at least 1.</summary>
    public int TransformBatchSize { get; init; } = LightningTrainerOptions.DefaultTransformBatchSize;

    internal void Validate()
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(InputColumnName, nameof(InputColumnName));
        ArgumentException.ThrowIfNullOrWhiteSpace(OutputColumnName, nameof(OutputColumnName));
        if (InputColumnName == OutputColumnName)
            throw new ArgumentException(
                $"'{InputColumnName}' is both {nameof(InputColumnName)} and {nameof(OutputColumnName)}; the ONNX graph names each value once, " +
                "so give the output column another name.", nameof(OutputColumnName));
        if (TransformBatchSize < 1)
            throw new ArgumentOutOfRangeException(nameof(TransformBatchSize), TransformBatchSize,
                $"{nameof(TransformBatchSize)} is {TransformBatchSize}; it must be at least 1.");
    }
}
