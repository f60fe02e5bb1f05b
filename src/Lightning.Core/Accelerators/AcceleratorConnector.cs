using Lightning.Precision;
using Lightning.Strategies;

namespace Lightning.Accelerators;

/// <summary>
/// Resolves the Accelerator, Devices, Strategy and Precision settings into one connected strategy (Lightning's
/// accelerator connector); the strategy and precision names were validated with the options.
/// </summary>
internal static class AcceleratorConnector
{
    public static Strategy Connect(string accelerator, Devices devices, StrategyChoice strategy, PrecisionChoice precision, int numNodes,
        TimeSpan distributedTimeout, Action<string> warn, string memoryFormat, bool convertModuleLayout)
    {
        var chosen = Accelerator.FromName(accelerator);
        var ids = chosen.ParseDevices(devices);
        var connected = strategy.Create(ids.Count, chosen.DeviceType, distributedTimeout);
        connected.Connect(chosen, ids.Select(chosen.GetDevice).ToList(), devices, numNodes, precision.Create(chosen.DeviceType, warn),
            memoryFormat, convertModuleLayout);
        return connected;
    }
}
