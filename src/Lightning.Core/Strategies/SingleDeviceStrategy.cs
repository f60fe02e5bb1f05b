namespace Lightning.Strategies;

/// <summary>Everything on one device in this process (Lightning's <c>SingleDeviceStrategy</c>, strategy "single_device").</summary>
public sealed class SingleDeviceStrategy : Strategy
{
    /// <inheritdoc />
    protected internal override void CheckDevices()
    {
        if (ParallelDevices.Count > 1)
            throw new ArgumentException(
                $"Strategy = \"single_device\" runs on one device, but Devices = {RequestedDevices} asks for {ParallelDevices.Count}.", "Strategy");
    }
}
