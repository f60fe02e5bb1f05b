using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Lightning.Serving;

/// <summary>Registers <see cref="PredictionEnginePool{TData, TPrediction}"/>, as Microsoft.Extensions.ML does.</summary>
public static class PredictionEnginePoolServiceCollectionExtensions
{
    /// <summary>
    /// Registers a singleton <see cref="PredictionEnginePool{TData, TPrediction}"/>; add its models on the returned
    /// builder. Calling it again for the same types keeps the first registration.
    /// </summary>
    /// <param name="services">The service collection.</param>
    /// <returns>The builder to add models on.</returns>
    public static PredictionEnginePoolBuilder<TData, TPrediction> AddPredictionEnginePool<TData, TPrediction>(this IServiceCollection services)
        where TData : class
        where TPrediction : class, new()
    {
        services.AddRequiredPredictionEnginePoolServices();
        services.TryAddSingleton<PredictionEnginePool<TData, TPrediction>>();
        AddStartup<TData, TPrediction>(services);
        return new PredictionEnginePoolBuilder<TData, TPrediction>(services);
    }

    /// <summary>Registers a singleton pool built by <paramref name="implementationFactory"/>, replacing an earlier registration.</summary>
    /// <param name="services">The service collection.</param>
    /// <param name="implementationFactory">Builds the pool.</param>
    /// <returns>The builder to add models on.</returns>
    public static PredictionEnginePoolBuilder<TData, TPrediction> AddPredictionEnginePool<TData, TPrediction>(
        this IServiceCollection services, Func<IServiceProvider, PredictionEnginePool<TData, TPrediction>> implementationFactory)
        where TData : class
        where TPrediction : class, new()
    {
        ArgumentNullException.ThrowIfNull(implementationFactory);
        services.AddRequiredPredictionEnginePoolServices();
        services.RemoveAll<PredictionEnginePool<TData, TPrediction>>();
        services.AddSingleton(implementationFactory);
        AddStartup<TData, TPrediction>(services);
        return new PredictionEnginePoolBuilder<TData, TPrediction>(services);
    }

    /// <summary>Adds logging, options and the <see cref="MLOptions"/> post-configuration (device choice, ML.NET log forwarding).</summary>
    /// <param name="services">The service collection.</param>
    /// <returns>The same service collection.</returns>
    public static IServiceCollection AddRequiredPredictionEnginePoolServices(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddLogging();
        services.AddOptions();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IPostConfigureOptions<MLOptions>, PostMLContextOptionsConfiguration>());
        return services;
    }

    private static void AddStartup<TData, TPrediction>(IServiceCollection services)
        where TData : class
        where TPrediction : class, new()
    {
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, PredictionEnginePoolStartup<TData, TPrediction>>());
    }
}
