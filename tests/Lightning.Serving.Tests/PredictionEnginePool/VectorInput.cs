using Microsoft.ML.Data;

namespace Lightning.Serving.Tests;

/// <summary>One example with a fixed-size vector column, as image and embedding models take.</summary>
public sealed class VectorInput
{
    [VectorType(3)]
    public float[]? Features { get; set; }
}
