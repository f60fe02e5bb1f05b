namespace Lightning.Core.Tests.Strategies;

/// <summary>Runs only where network namespaces can be made (root and iproute2's <c>ip</c>); elsewhere reported as skipped with the reason.</summary>
public sealed class TwoHostsFactAttribute : FactAttribute
{
    public TwoHostsFactAttribute()
    {
        if (!OperatingSystem.IsLinux()) Skip = "two simulated hosts need Linux network namespaces";
        else if (Environment.UserName != "root") Skip = "two simulated hosts need root (ip netns add); run the tests as root, as .ci/run does";
        else if (!File.Exists("/usr/sbin/ip") && !File.Exists("/sbin/ip") && !File.Exists("/usr/bin/ip")) Skip = "two simulated hosts need iproute2's ip (apt-get install iproute2)";
    }
}
