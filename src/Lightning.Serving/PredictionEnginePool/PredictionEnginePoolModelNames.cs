namespace Lightning.Serving;

/// <summary>The model names added through <c>FromFile</c>/<c>FromUri</c>, for start-up loading and endpoint checks.</summary>
internal sealed class PredictionEnginePoolModelNames<TData, TPrediction>
    where TData : class
    where TPrediction : class, new()
{
    public HashSet<string> Names { get; } = new(StringComparer.Ordinal);
}
