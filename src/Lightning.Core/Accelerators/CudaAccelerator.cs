using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Accelerators;

/// <summary>CUDA GPUs: the devices asked for must exist; "auto" takes them all.</summary>
internal sealed class CudaAccelerator(int deviceCount) : Accelerator
{
    public override string Name => "cuda";
    public override DeviceType DeviceType => DeviceType.CUDA;
    public override Device GetDevice(int index) => new(DeviceType.CUDA, index);

    internal override IReadOnlyList<int> ParseDevices(Devices devices)
    {
        var ids = Indices(devices, all: deviceCount, auto: deviceCount);
        if (ids.Any(i => i >= deviceCount))
            throw new InvalidOperationException($"Devices = {devices} asks for CUDA devices that do not exist; available: {deviceCount} (indices 0 to {deviceCount - 1}).");
        return ids;
    }
}
