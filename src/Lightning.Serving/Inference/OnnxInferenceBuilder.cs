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

    /// <summary>
    /// Serves the models of a repository laid out as Triton's: <c>path/&lt;name&gt;/&lt;version&gt;/model.onnx</c>, with an
    /// optional <c>path/&lt;name&gt;/config.json</c> (<c>max_batch_size</c>, <c>max_queue_delay_microseconds</c>,
    /// <c>max_queue_size</c>, <c>dynamic_batching</c>, <c>execution_provider</c>, <c>intra_op_num_threads</c>,
    /// <c>watch_for_changes</c>, <c>version_policy</c>: <c>{"latest": {"num_versions": n}}</c> (default 1),
    /// <c>{"all": {}}</c> or <c>{"specific": {"versions": [..]}}</c>). The versions a policy picks serve at once, under
    /// <c>/v2/models/{name}/versions/{version}</c>; the unversioned routes serve the latest. <c>MapOpenInference</c> adds the
    /// repository extension's <c>POST /v2/repository/index</c> and <c>POST /v2/repository/models/{name}/load|unload</c>.
    /// Each version's file is watched and reloaded in place like a model added by path; new version folders serve after a load.
    /// </summary>
    /// <param name="path">The repository folder; it must exist when the host starts.</param>
    /// <param name="loadAllOnStart">True (default): every model loads at start (one that fails is logged and left
    /// unloaded); false: models load only through the load route (Triton's explicit model control).</param>
    /// <exception cref="ArgumentException">The path is empty.</exception>
    public OnnxInferenceBuilder AddModelRepository(string path, bool loadAllOnStart = true)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        Services.Configure<OnnxInferenceOptions>(o =>
        {
            o.RepositoryPath = path;
            o.RepositoryLoadAllOnStart = loadAllOnStart;
        });
        return this;
    }

    [GeneratedRegex(@"^[A-Za-z0-9_\-][A-Za-z0-9_.\-]{0,127}$")]
    private static partial Regex ModelName();
}
