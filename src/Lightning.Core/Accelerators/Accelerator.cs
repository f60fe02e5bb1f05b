using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Accelerators;

/// <summary>
/// A kind of device a strategy runs on (Lightning's accelerators): which devices exist and how a
/// <see cref="Devices"/> setting picks among them. The built-ins are the CPU and CUDA; <c>"auto"</c> takes CUDA when present.
/// </summary>
public abstract class Accelerator
{
    /// <summary>The names <see cref="TrainerOptions.Accelerator"/> accepts.</summary>
    internal static readonly string[] Names = ["auto", "cpu", "cuda", "gpu"];

    private protected Accelerator() { }

    /// <summary>The accelerator's name: "cpu" or "cuda".</summary>
    public abstract string Name { get; }

    /// <summary>libtorch's device type.</summary>
    public abstract DeviceType DeviceType { get; }

    /// <summary>The device with index <paramref name="index"/>.</summary>
    public abstract Device GetDevice(int index);

    /// <summary>The device indices a <see cref="Devices"/> setting asks for; fails naming the setting when they cannot be had.</summary>
    internal abstract IReadOnlyList<int> ParseDevices(Devices devices);

    /// <summary>The accelerator named <paramref name="name"/> ("auto": CUDA when present, else the CPU).</summary>
    internal static Accelerator FromName(string name)
    {
        if (!Names.Contains(name))
            throw new ArgumentOutOfRangeException("Accelerator", name, $"Accelerator = \"{name}\" is not allowed: use one of {string.Join(", ", Names.Select(a => $"\"{a}\""))}.");
        var cudaDevices = CudaDeviceCount();
        return name switch
        {
            "cuda" or "gpu" => cudaDevices > 0 ? new CudaAccelerator(cudaDevices) : throw new InvalidOperationException(
                $"Accelerator = \"{name}\" asks for CUDA, but no CUDA device is available (CUDA devices: 0; available: cpu). " +
                "Use Accelerator = \"cpu\", or run on a CUDA machine with a CUDA build of TorchSharp (README, \"CUDA\")."),
            "auto" when cudaDevices > 0 => new CudaAccelerator(cudaDevices),
            _ => new CpuAccelerator(),
        };
    }

    /// <summary>
    /// Replaces the CUDA device count libtorch reports, for this flow of execution only, so that device selection for
    /// several GPUs (which strategy, which device each rank drives) is tested on machines without them; selecting
    /// places nothing on a device.
    /// </summary>
    internal static readonly AsyncLocal<int?> CudaDeviceCountOverride = new();

    private static int CudaDeviceCount() => CudaDeviceCountOverride.Value ?? (cuda.is_available() ? cuda.device_count() : 0);

    /// <summary>Indices that <paramref name="devices"/> names, checked to be distinct and not negative.</summary>
    private protected static int[] Indices(Devices devices, int all, int auto)
    {
        int[] ids = devices switch
        {
            { Ids: { } given } => given,
            { Count: -1 } => Enumerable.Range(0, all).ToArray(),
            { Count: { } n } when n >= 1 => Enumerable.Range(0, n).ToArray(),
            { Count: { } n } => throw new ArgumentOutOfRangeException("Devices", n, $"Devices = {n} is not allowed: use \"auto\", a count of 1 or more, -1 for all, or an array of indices."),
            _ => Enumerable.Range(0, auto).ToArray(),
        };
        if (ids.Length == 0 || ids.Any(i => i < 0) || ids.Distinct().Count() != ids.Length)
            throw new ArgumentOutOfRangeException("Devices", devices.ToString(), $"Devices = {devices} is not allowed: indices must be distinct and 0 or more.");
        return ids;
    }
}
