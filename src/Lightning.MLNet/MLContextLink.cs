using System.Reflection;
using Microsoft.ML;
using Microsoft.ML.Runtime;

namespace Lightning.MLNet;

/// <summary>
/// The <see cref="MLContext"/> a catalog belongs to, as the Lightning trainers and transform see it: its log (the
/// <c>MLContext.Log</c> event) and its <c>GpuDeviceId</c>/<c>FallbackToCpu</c>.
/// </summary>
/// <remarks>
/// ML.NET keeps a catalog's environment internal (its own trainers reach it through <c>[BestFriend]</c> access), so it is
/// read here by reflection: the catalogs' <c>IInternalCatalog.Environment</c>, and on it the context's GPU settings. A test fails
/// when an ML.NET update moves them.
/// </remarks>
internal sealed class MLContextLink
{
    private const BindingFlags Instance = BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic;

    private MLContextLink(IHostEnvironment? environment)
    {
        Environment = environment;
        if (environment is null) return;
        GpuDeviceId = (int?)Property(environment, "GpuDeviceId")?.GetValue(environment);
        FallbackToCpu = (bool?)Property(environment, "FallbackToCpu")?.GetValue(environment) ?? false;
    }

    /// <summary>The catalog's environment (the context's own), or null when it cannot be found.</summary>
    public IHostEnvironment? Environment { get; }

    /// <summary>The context's <c>GpuDeviceId</c>.</summary>
    public int? GpuDeviceId { get; }

    /// <summary>The context's <c>FallbackToCpu</c>.</summary>
    public bool FallbackToCpu { get; }

    /// <summary>A link that logs nowhere and asks for no GPU.</summary>
    public static MLContextLink None { get; } = new(null);

    /// <summary>The link of the context <paramref name="catalog"/> (an ML.NET catalog or trainers catalog) belongs to.</summary>
    public static MLContextLink Of(object catalog) =>
        Property(catalog, "Environment")?.GetValue(catalog) is IHostEnvironment environment ? new MLContextLink(environment) : None;

    /// <summary>A channel of the context's log named <paramref name="name"/>; its messages reach <c>MLContext.Log</c>.</summary>
    public IChannel? Start(string name) => Environment?.Start(name);

    private static PropertyInfo? Property(object target, string name)
    {
        for (var type = target.GetType(); type is not null; type = type.BaseType)
            if (type.GetProperty(name, Instance | BindingFlags.DeclaredOnly) is { } property)
                return property;
        return target.GetType().GetInterfaces().Select(i => i.GetProperty(name, Instance)).FirstOrDefault(p => p is not null);
    }
}
