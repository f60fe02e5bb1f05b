using System.Collections;
using System.Runtime.InteropServices;

namespace Lightning;

/// <summary>
/// Keeps memory that libtorch frees in glibc's heap, ready for the next step. libtorch's CPU tensors come from malloc.
/// With glibc's defaults, a block over 128 KiB is mapped and unmapped each time, and a free heap top larger than twice
/// the largest such block goes back to the OS, so memory is faulted in again and again. On a 2-core VM that was about
/// 1,700 page faults (30 ms) after every .NET garbage collection, in a 20 ms LSTM epoch. PyTorch users get the same
/// effect by preloading jemalloc or tcmalloc.
/// </summary>
internal static partial class GlibcMalloc
{
    // mallopt's parameter numbers, from glibc's malloc.h.
    private const int TrimThresholdParameter = -1;
    private const int TopPadParameter = -2;
    private const int MmapThresholdParameter = -3;

    /// <summary>Blocks below this come from the heap: glibc's largest allowed value on 64-bit systems.</summary>
    private const int MmapThreshold = 32 << 20;

    /// <summary>Free memory at the heap's top beyond this goes back to the OS; below it, it waits for the next step.</summary>
    private const int TrimThreshold = 256 << 20;

    /// <summary>
    /// Free memory kept at the top when a heap shrinks. Threads other than the first allocate from their own heaps of at
    /// most 64 MiB, which glibc unmaps whole once empty unless this much would be kept.
    /// </summary>
    private const int TopPad = 64 << 20;

    private static int _applied;

    [LibraryImport("libc", EntryPoint = "mallopt")]
    private static partial int Mallopt(int parameter, int value);

    /// <summary>
    /// Sets the thresholds once per process, on Linux. A user's own <c>MALLOC_*</c> environment variables or
    /// <c>glibc.malloc</c> tunables win: with any of them set, nothing changes.
    /// </summary>
    public static void KeepFreedMemory()
    {
        if (!OperatingSystem.IsLinux() || Interlocked.Exchange(ref _applied, 1) == 1
            || UserChoseSettings(Environment.GetEnvironmentVariables())) return;
        // Only a hint: where mallopt refuses (another allocator, another libc), the defaults stay and training still works.
        Mallopt(MmapThresholdParameter, MmapThreshold);
        Mallopt(TrimThresholdParameter, TrimThreshold);
        Mallopt(TopPadParameter, TopPad);
    }

    /// <summary>True when <paramref name="environment"/> sets any of glibc's malloc settings.</summary>
    internal static bool UserChoseSettings(IDictionary environment) =>
        environment.Keys.OfType<string>().Any(name => name.StartsWith("MALLOC_", StringComparison.Ordinal))
        || (environment["GLIBC_TUNABLES"] as string)?.Contains("glibc.malloc.", StringComparison.Ordinal) == true;
}
