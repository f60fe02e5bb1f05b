namespace Lightning.Serving.Tests;

/// <summary>
/// Test classes that flood a server with requests (fuzzing, reloads under load). xUnit runs this collection on its own,
/// after the others, so they never take the CPU from tests that wait on a server's answers.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class LoadCollection
{
    public const string Name = "Load";
}
