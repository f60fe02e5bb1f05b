namespace Lightning.Serving.Tests;

/// <summary>One example: a size in [0, 1].</summary>
public sealed class SizeInput
{
    public float Size { get; set; }
}
