namespace Lightning.GpuKit.Tests;

/// <summary>
/// Runs where the kit can be built and run on the CPU: bash, tar, xz, MPICH (libmpich.so.12, mpiexec.hydra,
/// hydra_pmi_proxy) and the libtorch-cpu-linux-x64 package in the NuGet cache (restored with Lightning.Core);
/// elsewhere reported as skipped, naming what is missing.
/// </summary>
public sealed class GpuKitFactAttribute : FactAttribute
{
    public GpuKitFactAttribute()
    {
        var missing = new List<string>();
        foreach (var tool in new[] { "bash", "tar", "xz", "mpiexec.hydra", "hydra_pmi_proxy", "ldconfig" })
            if (FindOnPath(tool) is null) missing.Add(tool);
        if (!new[] { "/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib64" }.Any(d => File.Exists(Path.Combine(d, "libmpich.so.12"))))
            missing.Add("libmpich.so.12");
        if (LibTorchFolder is null) missing.Add($"libtorch-cpu-linux-x64 in {PackagesFolder}");
        if (!OperatingSystem.IsLinux()) missing.Add("Linux");
        if (missing.Count > 0)
            Skip = $"the GPU kit needs {string.Join(", ", missing)} (Debian: apt-get install -y xz-utils mpich; dotnet restore Lightning.sln)";
    }

    private static string PackagesFolder => Environment.GetEnvironmentVariable("NUGET_PACKAGES")
        ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".nuget", "packages");

    /// <summary>The native folder of the newest libtorch-cpu-linux-x64 package in the NuGet cache, or null.</summary>
    public static string? LibTorchFolder
    {
        get
        {
            var package = Path.Combine(PackagesFolder, "libtorch-cpu-linux-x64");
            if (!Directory.Exists(package)) return null;
            return Directory.GetDirectories(package)
                .Select(version => Path.Combine(version, "runtimes", "linux-x64", "native"))
                .Where(native => File.Exists(Path.Combine(native, "libtorch_cpu.so")))
                .OrderByDescending(native => Version.TryParse(Path.GetFileName(Path.GetDirectoryName(Path.GetDirectoryName(Path.GetDirectoryName(native)))), out var v) ? v : new Version())
                .FirstOrDefault();
        }
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(folder => Path.Combine(folder, name)).FirstOrDefault(File.Exists);
}
