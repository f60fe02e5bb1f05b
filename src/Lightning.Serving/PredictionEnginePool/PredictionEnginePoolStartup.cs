using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Lightning.Serving;

/// <summary>
/// In a host, loads the configured models when the host starts, so a missing or broken model file stops the start
/// with its error instead of failing the first request.
/// </summary>
internal sealed class PredictionEnginePoolStartup<TData, TPrediction>(IServiceProvider services, IOptions<PredictionEnginePoolModelNames<TData, TPrediction>> names) : IHostedService
    where TData : class
    where TPrediction : class, new()
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        var pool = services.GetRequiredService<PredictionEnginePool<TData, TPrediction>>();
        foreach (var name in names.Value.Names) pool.GetModelInfo(name);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
