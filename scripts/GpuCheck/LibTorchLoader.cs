using System.Runtime.InteropServices;
using TorchSharp;

namespace Lightning.GpuCheck;

/// <summary>
/// Binds TorchSharp to a libtorch outside the program (PyTorch's torch/lib on the GPU machine), for a build with
/// TorchSharpBackend=none. The libraries are loaded by full path, CUDA ones included, before TorchSharp first asks for
/// them: TorchSharp then finds them already in the process instead of searching its own package folders.
/// </summary>
internal static class LibTorchLoader
{
    /// <summary>The environment variable naming the folder that holds libtorch*.so (scripts/gpu-run.sh sets it).</summary>
    public const string Variable = "LIBTORCH_DIR";

    // Dependency order; the CUDA pair is absent from a CPU-only libtorch.
    private static readonly string[] Libraries = ["libc10.so", "libtorch_cpu.so", "libc10_cuda.so", "libtorch_cuda.so", "libtorch.so"];

    /// <summary>True when the libtorch folder has libtorch_cuda.so: then CUDA is expected to start.</summary>
    public static bool HasCudaLibrary { get; private set; }

    /// <summary>Why CUDA could not start (null when it started or was not asked for).</summary>
    public static string? CudaFailure { get; private set; }

    public static void Load(string? folder)
    {
        if (!string.IsNullOrEmpty(folder))
        {
            if (!File.Exists(Path.Combine(folder, "libtorch_cpu.so")))
                throw new DirectoryNotFoundException($"{Variable} = '{folder}' holds no libtorch_cpu.so: point it at PyTorch's torch/lib (or a libtorch lib folder).");
            HasCudaLibrary = File.Exists(Path.Combine(folder, "libtorch_cuda.so"));
            foreach (var library in Libraries)
            {
                var path = Path.Combine(folder, library);
                if (!File.Exists(path)) continue;
                try
                {
                    NativeLibrary.Load(path);
                }
                catch (DllNotFoundException e)
                {
                    // A CUDA library that does not load leaves CUDA unavailable; the CUDA checks then fail naming why.
                    // .NET's message is boilerplate; the loader's reason (dlerror) is its last line.
                    CudaFailure ??= $"{library} did not load: {e.Message.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)[^1]}";
                }
            }
        }
        try
        {
            torch.InitializeDeviceType(DeviceType.CUDA);
        }
        catch (Exception e) // TorchSharp reports a missing CUDA with several exception types; any of them means CPU only
        {
            CudaFailure ??= e.Message.Split('\n')[0].Split(". Trace")[0];
            torch.InitializeDeviceType(DeviceType.CPU);
        }
    }

}
