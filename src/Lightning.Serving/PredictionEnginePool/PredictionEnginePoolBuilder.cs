using Microsoft.Extensions.DependencyInjection;

namespace Lightning.Serving;

/// <summary>What <c>AddPredictionEnginePool</c> returns: add models to it with <c>FromFile</c> and <c>FromUri</c>.</summary>
/// <typeparam name="TData">The input type of the models.</typeparam>
/// <typeparam name="TPrediction">The output type of the models.</typeparam>
public class PredictionEnginePoolBuilder<TData, TPrediction>
    where TData : class
    where TPrediction : class, new()
{
    /// <summary>Creates a builder over the given services.</summary>
    /// <param name="services">The service collection the pool is registered in.</param>
    /// <exception cref="ArgumentException"><paramref name="services"/> is null (the type Microsoft.Extensions.ML throws).</exception>
    public PredictionEnginePoolBuilder(IServiceCollection services)
    {
        Services = services ?? throw new ArgumentException("The service collection of a PredictionEnginePoolBuilder cannot be null.", nameof(services));
    }

    /// <summary>The service collection the pool is registered in.</summary>
    public IServiceCollection Services { get; }
}
