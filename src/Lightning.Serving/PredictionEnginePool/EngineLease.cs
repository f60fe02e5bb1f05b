namespace Lightning.Serving;

/// <summary>Which generation an engine belongs to and whether it is rented out now.</summary>
internal sealed class EngineLease<TData, TPrediction>(EngineGeneration<TData, TPrediction> generation)
    where TData : class
    where TPrediction : class, new()
{
    public EngineGeneration<TData, TPrediction> Generation { get; } = generation;

    /// <summary>1 while rented; a field so that returns can exchange it atomically.</summary>
    public int Out;
}
