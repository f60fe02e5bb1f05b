using TorchSharp;
using Lightning.Precision;
using static TorchSharp.torch;

namespace Lightning.Loops;

/// <summary>Resolves Accelerator, Devices, Strategy and Precision into the devices and plugins a run uses (Lightning's accelerator connector).</summary>
/// <param name="Root">The device of the module and of the primary replica.</param>
/// <param name="Replicas">How many data-parallel replicas share each batch (1 without "dp").</param>
/// <param name="Precision">The precision plugin.</param>
internal sealed record DeviceSelection(Device Root, int Replicas, PrecisionPlugin Precision)
{
    public static readonly string[] Accelerators = ["auto", "cpu", "cuda", "gpu"];
    public static readonly string[] Strategies = ["auto", "single_device", "dp", "ddp"];

    public static DeviceSelection Resolve(string accelerator, Devices devices, string strategy, string precision, Action<string> warn)
    {
        if (!Accelerators.Contains(accelerator))
            throw new ArgumentOutOfRangeException("Accelerator", accelerator, $"Accelerator = \"{accelerator}\" is not allowed: use one of {string.Join(", ", Accelerators.Select(a => $"\"{a}\""))}.");
        if (!Strategies.Contains(strategy))
            throw new ArgumentOutOfRangeException("Strategy", strategy, $"Strategy = \"{strategy}\" is not allowed: use one of {string.Join(", ", Strategies.Select(s => $"\"{s}\""))}.");
        PrecisionPlugin.Canonical(precision);

        var cudaCount = cuda.is_available() ? cuda.device_count() : 0;
        var useCuda = accelerator switch
        {
            "cuda" or "gpu" => cudaCount > 0 ? true : throw new InvalidOperationException(
                $"Accelerator = \"{accelerator}\" asks for CUDA, but no CUDA device is available (CUDA devices: 0; available: cpu). " +
                "Use Accelerator = \"cpu\", or run on a CUDA machine with a CUDA build of TorchSharp (README, \"CUDA\")."),
            "auto" => cudaCount > 0,
            _ => false,
        };
        var type = useCuda ? DeviceType.CUDA : DeviceType.CPU;
        // CPU "devices" are replicas on the one CPU: any number may be asked for; CUDA devices must exist.
        var available = useCuda ? cudaCount : int.MaxValue;
        int[] ids = devices switch
        {
            { Ids: { } given } => given,
            { Count: -1 } => Enumerable.Range(0, useCuda ? cudaCount : 1).ToArray(),
            { Count: { } n } when n >= 1 => Enumerable.Range(0, n).ToArray(),
            { Count: { } n } => throw new ArgumentOutOfRangeException("Devices", n, $"Devices = {n} is not allowed: use \"auto\", a count of 1 or more, -1 for all, or an array of indices."),
            _ => useCuda ? Enumerable.Range(0, cudaCount).ToArray() : [0],
        };
        if (ids.Length == 0 || ids.Any(i => i < 0) || ids.Distinct().Count() != ids.Length)
            throw new ArgumentOutOfRangeException("Devices", devices.ToString(), $"Devices = {devices} is not allowed: indices must be distinct and 0 or more.");
        if (useCuda && ids.Any(i => i >= available))
            throw new InvalidOperationException($"Devices = {devices} asks for CUDA devices that do not exist; available: {cudaCount} (indices 0 to {cudaCount - 1}).");

        if (strategy == "single_device" && ids.Length > 1)
            throw new ArgumentException($"Strategy = \"single_device\" runs on one device, but Devices = {devices} asks for {ids.Length}.", "Strategy");
        if (strategy == "ddp")
        {
            // One process per device: the rank with local rank i drives the i-th of the devices asked for.
            var device = useCuda ? new Device(DeviceType.CUDA, ids[Lightning.Strategies.Mpi.LocalRank % ids.Length]) : CPU;
            return new DeviceSelection(device, 1, PrecisionPlugin.Create(precision, type, warn));
        }
        // CPU replicas share one set of weights in memory, so a single module serves them all; CUDA replicas would
        // need a copy of the module per device, which TorchSharp cannot make of an arbitrary module.
        if (useCuda && ids.Length > 1)
            throw new ArgumentException(
                $"Devices = {devices} asks for {ids.Length} CUDA devices; data parallel runs on CPU replicas only for now. Use one CUDA device.", "Devices");
        var root = useCuda ? new Device(DeviceType.CUDA, ids[0]) : CPU;
        return new DeviceSelection(root, ids.Length, PrecisionPlugin.Create(precision, type, warn));
    }
}
