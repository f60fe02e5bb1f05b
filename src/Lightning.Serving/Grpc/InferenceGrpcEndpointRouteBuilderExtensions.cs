using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace Lightning.Serving;

/// <summary><c>MapOpenInferenceGrpc</c>: the Open Inference Protocol's gRPC service next to the REST routes.</summary>
public static class InferenceGrpcEndpointRouteBuilderExtensions
{
    /// <summary>
    /// Maps KServe's <c>inference.GRPCInferenceService</c> (ServerLive, ServerReady, ModelReady, ServerMetadata,
    /// ModelMetadata, ModelInfer) over the models added with <see cref="OnnxInferenceServiceCollectionExtensions.AddOnnxInference"/>:
    /// the same models, batchers and validation as <see cref="InferenceEndpoints.MapOpenInference"/>. gRPC needs HTTP/2:
    /// over plain HTTP, give Kestrel an endpoint with <c>Protocols = Http2</c> (or <c>Http1AndHttp2</c> with TLS).
    /// </summary>
    /// <param name="endpoints">The application's endpoints.</param>
    /// <returns>The service's convention builder, for authorization and the like.</returns>
    /// <exception cref="InvalidOperationException"><see cref="OnnxInferenceServiceCollectionExtensions.AddOnnxInference"/> was not called.</exception>
    public static GrpcServiceEndpointConventionBuilder MapOpenInferenceGrpc(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        if (endpoints.ServiceProvider.GetService<IServiceProviderIsService>()?.IsService(typeof(OnnxModelRegistry)) != true)
            throw new InvalidOperationException(
                "Unable to find the required services. Add them by calling 'IServiceCollection.AddOnnxInference()' in the application startup code.");
        return endpoints.MapGrpcService<InferenceGrpcService>();
    }
}
