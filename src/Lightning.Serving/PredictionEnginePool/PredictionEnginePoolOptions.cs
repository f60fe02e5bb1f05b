namespace Lightning.Serving;

/// <summary>
/// Named options of one model in a <see cref="PredictionEnginePool{TData, TPrediction}"/>: the options name is the model
/// name, and <c>""</c> is the default model.
/// </summary>
/// <typeparam name="TData">The input type of the model.</typeparam>
/// <typeparam name="TPrediction">The output type of the model.</typeparam>
public class PredictionEnginePoolOptions<TData, TPrediction>
    where TData : class
    where TPrediction : class, new()
{
    /// <summary>The loader that supplies the model and signals reloads; null when no model of this name is configured.</summary>
    public ModelLoader? ModelLoader { get; set; }
}
