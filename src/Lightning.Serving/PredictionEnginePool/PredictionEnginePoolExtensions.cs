namespace Lightning.Serving;

/// <summary><c>Predict</c> helpers that rent an engine, score one example and give the engine back.</summary>
public static class PredictionEnginePoolExtensions
{
    /// <summary>Scores one example with the default model.</summary>
    /// <param name="predictionEnginePool">The pool.</param>
    /// <param name="example">The input.</param>
    /// <returns>The prediction.</returns>
    public static TPrediction Predict<TData, TPrediction>(this PredictionEnginePool<TData, TPrediction> predictionEnginePool, TData example)
        where TData : class
        where TPrediction : class, new()
        => predictionEnginePool.Predict(string.Empty, example);

    /// <summary>Scores one example with the named model.</summary>
    /// <param name="predictionEnginePool">The pool.</param>
    /// <param name="modelName">The model name; <c>""</c> for the default model.</param>
    /// <param name="example">The input.</param>
    /// <returns>The prediction.</returns>
    public static TPrediction Predict<TData, TPrediction>(this PredictionEnginePool<TData, TPrediction> predictionEnginePool, string modelName, TData example)
        where TData : class
        where TPrediction : class, new()
    {
        ArgumentNullException.ThrowIfNull(predictionEnginePool);
        var engine = predictionEnginePool.GetPredictionEngine(modelName);
        try
        {
            return engine.Predict(example);
        }
        finally
        {
            predictionEnginePool.ReturnPredictionEngine(modelName, engine);
        }
    }
}
