using Microsoft.Extensions.Primitives;
using Microsoft.ML;

namespace Lightning.Serving;

/// <summary>
/// Supplies the model behind one named pool and tells the pool when a new one is ready. Assign a custom loader to
/// <see cref="PredictionEnginePoolOptions{TData, TPrediction}.ModelLoader"/> through named options to load models from
/// anywhere; <c>FromFile</c> and <c>FromUri</c> use the built-in file and HTTP loaders.
/// </summary>
public abstract class ModelLoader
{
    /// <summary>A token that fires when <see cref="GetModel"/> would return a new model.</summary>
    public abstract IChangeToken GetReloadToken();

    /// <summary>The model loaded now.</summary>
    public abstract ITransformer GetModel();
}
