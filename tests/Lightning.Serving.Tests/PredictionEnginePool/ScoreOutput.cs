namespace Lightning.Serving.Tests;

/// <summary>The regression score.</summary>
public sealed class ScoreOutput
{
    public float Score { get; set; }
}
