using Microsoft.Extensions.Hosting;

namespace Lightning.Serving;

/// <summary>Loads the models when the host starts (a failure stops the start) and drains the batchers when it stops.</summary>
internal sealed class OnnxModelRegistryHostedService(OnnxModelRegistry registry, IHostApplicationLifetime lifetime) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        lifetime.ApplicationStopping.Register(registry.BeginStopping);
        registry.Start();
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => registry.StopAsync(cancellationToken);
}
