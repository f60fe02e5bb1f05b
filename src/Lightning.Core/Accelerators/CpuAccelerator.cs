using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Accelerators;

/// <summary>The CPU. Its "devices" are replicas (data parallel) or processes ("ddp") on the one CPU, so any number may be asked for.</summary>
internal sealed class CpuAccelerator : Accelerator
{
    public override string Name => "cpu";
    public override DeviceType DeviceType => DeviceType.CPU;
    public override Device GetDevice(int index) => CPU;
    internal override IReadOnlyList<int> ParseDevices(Devices devices) => Indices(devices, all: 1, auto: 1);
}
