using System.Text.RegularExpressions;
using Microsoft.Extensions.DependencyInjection;

namespace Lightning.Serving;

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
