using System.Diagnostics;
using static TorchSharp.torch;

namespace Lightning.Testing;

/// <summary>
/// Why a test cannot run here, or null when it can: one check per real component a test needs.
/// <see cref="RequiresFactAttribute"/> and <see cref="RequiresTheoryAttribute"/> turn these into "Skipped" with the
/// reason; .ci/run installs every component, so there only the GPU checks skip.
/// </summary>
public static class Requires
{
    /// <summary>Why <paramref name="component"/> is missing here, or null when it is present.</summary>
    public static string? Reason(Component component) => component switch
    {
        Component.NoCuda => NoCuda,
        Component.FashionMnist => FashionMnist,
        Component.Mpich => Mpich,
        Component.Strace => Strace,
        _ => throw new ArgumentOutOfRangeException(nameof(component), component, null),
    };

    /// <summary>Null on a machine without CUDA; the reason otherwise.</summary>
    public static string? NoCuda => cuda.is_available() ? "this checks what happens without CUDA, and TorchSharp finds a CUDA device here" : null;

    /// <summary>Null when TorchSharp finds a CUDA device; the reason otherwise.</summary>
    public static string? Cuda => cuda.is_available() ? null : "needs a CUDA device (TorchSharp finds none: CPU build or no GPU)";

    /// <summary>Null when the Debian package dataset-fashion-mnist is installed.</summary>
    public static string? FashionMnist =>
        File.Exists("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz") ? null
            : "needs Fashion-MNIST in /usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist, as .ci/run does)";

    /// <summary>Null when MPICH's mpiexec and libmpich are installed.</summary>
    public static string? Mpich => OnPath("mpiexec") && LibraryFound("libmpich.so.12")
        ? null : "needs MPICH's mpiexec and libmpich.so.12 (apt-get install mpich, as .ci/run does)";

    /// <summary>Null when strace is installed.</summary>
    public static string? Strace => OnPath("strace") ? null : "needs strace (apt-get install strace, as .ci/run does)";

    /// <summary>True when <paramref name="program"/> is an executable file in a folder of PATH.</summary>
    public static bool OnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Any(folder => File.Exists(Path.Combine(folder, program)));

    private static bool LibraryFound(string name)
    {
        try
        {
            using var process = Process.Start(new ProcessStartInfo("ldconfig", ["-p"]) { RedirectStandardOutput = true });
            return process is not null && process.StandardOutput.ReadToEnd().Contains(name, StringComparison.Ordinal);
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }
}
