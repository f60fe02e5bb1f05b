using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Lightning.Serving;

/// <summary>Registers ONNX models served through the Open Inference Protocol (v2) with dynamic batching.</summary>
/// <example><code>
/// builder.Services.AddOnnxInference()
///     .AddModel("encoder", "encoder.onnx", o => { o.MaxBatchSize = 64; o.MaxQueueDelayMicroseconds = 500; });
/// var app = builder.Build();
/// app.MapOpenInference();
/// </code></example>
public static class OnnxInferenceServiceCollectionExtensions
{
    /// <summary>Adds the ONNX inference services (idempotent) and returns a builder to add models with.</summary>
    /// <param name="services">The application's services.</param>
    /// <param name="configure">Server-wide settings; null keeps the defaults.</param>
    public static OnnxInferenceBuilder AddOnnxInference(this IServiceCollection services, Action<OnnxInferenceOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddLogging();
        var options = services.AddOptions<OnnxInferenceOptions>().ValidateOnStart();
        if (configure is not null) options.Configure(configure);
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<OnnxInferenceOptions>, OnnxInferenceOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<OnnxModelOptions>, OnnxModelOptionsValidator>());
        services.TryAddSingleton<InferenceMetrics>();
        services.TryAddSingleton<OnnxModelRegistry>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, OnnxModelRegistryHostedService>());
        return new OnnxInferenceBuilder(services);
    }
}

/// <summary>Adds models to the ONNX inference services; returned by <see cref="OnnxInferenceServiceCollectionExtensions.AddOnnxInference"/>.</summary>
public sealed partial class OnnxInferenceBuilder
{
    internal OnnxInferenceBuilder(IServiceCollection services) => Services = services;

    /// <summary>The application's services.</summary>
    public IServiceCollection Services { get; }

    /// <summary>
    /// Serves the ONNX file at <paramref name="path"/> as <paramref name="name"/> (the <c>{name}</c> of the v2 routes).
    /// The name is only ever looked up among the added models, never used as a path.
    /// </summary>
    /// <param name="name">1 to 128 characters of letters, digits, '_', '-' and '.', not starting with '.'.</param>
    /// <param name="path">The <c>.onnx</c> file; it is loaded when the host starts.</param>
    /// <param name="configure">Batching, provider and reload settings; null keeps the defaults.</param>
    /// <exception cref="ArgumentException">The name is not allowed or the path is empty.</exception>
    public OnnxInferenceBuilder AddModel(string name, string path, Action<OnnxModelOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!ModelName().IsMatch(name))
            throw new ArgumentException(
                $"Model name '{name}' is not allowed; use 1 to 128 letters, digits, '_', '-' or '.', not starting with '.'.", nameof(name));
        Services.Configure<OnnxInferenceOptions>(o => o.ModelNames.Add(name));
        var options = Services.AddOptions<OnnxModelOptions>(name).Configure(o => o.Path = path);
        if (configure is not null) options.Configure(configure);
        options.ValidateOnStart();
        return this;
    }

    [GeneratedRegex(@"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,127}$")]
    private static partial Regex ModelName();
}
