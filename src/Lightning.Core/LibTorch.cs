using System.Runtime.InteropServices;
using TorchSharp;

namespace Lightning;

/// <summary>
/// Process-wide CPU settings for libtorch that TorchSharp 0.107 does not expose: keeping freed memory for reuse, and
/// NNPACK on or off. A <see cref="Trainer"/> or <see cref="Fabric"/> applies the defaults (<see cref="ApplyDefaults"/>)
/// when it is built; an application that runs TorchSharp without them (inference, benchmarks) can call it itself.
/// </summary>
/// <remarks>The switches are libtorch's own, called by their exported C++ names.</remarks>
public static partial class LibTorch
{
    private const string Library = "libtorch_cpu";

    // NNPACK's status codes (nnpack.h): 0 is nnp_status_success.
    private const int NnpackSuccess = 0;

    private static readonly Lazy<bool> s_nnpackAvailable = new(ProbeNnpack);
    private static int s_nnpackDecided;
    private static volatile bool s_nnpackChosen;

    [LibraryImport(Library, EntryPoint = "_ZN2at13globalContextEv")]
    private static partial IntPtr GlobalContext();

    [LibraryImport(Library, EntryPoint = "_ZN2at7Context20setUserEnabledNNPACKEb")]
    private static partial void SetUserEnabledNnpack(IntPtr context, [MarshalAs(UnmanagedType.U1)] bool enabled);

    [LibraryImport(Library, EntryPoint = "_ZNK2at7Context17userEnabledNNPACKEv")]
    [return: MarshalAs(UnmanagedType.U1)]
    private static partial bool UserEnabledNnpack(IntPtr context);

    // NNPACK's own C entry point, linked into libtorch_cpu: it reports its status without printing anything, whereas
    // libtorch's at::_nnpack_available() logs a warning each time NNPACK fails to start.
    [LibraryImport(Library, EntryPoint = "nnp_initialize")]
    private static partial int NnpInitialize();

    [LibraryImport(Library, EntryPoint = "_ZN2at7Context26setDeterministicAlgorithmsEbb")]
    private static partial void SetDeterministicAlgorithms(IntPtr context, [MarshalAs(UnmanagedType.U1)] bool enabled,
        [MarshalAs(UnmanagedType.U1)] bool warnOnly);

    [LibraryImport(Library, EntryPoint = "_ZNK2at7Context23deterministicAlgorithmsEv")]
    [return: MarshalAs(UnmanagedType.U1)]
    private static partial bool DeterministicAlgorithms(IntPtr context);

    // c10::DeviceType and c10::ScalarType are int8 enums; autocast state is thread-local in libtorch.
    [LibraryImport(Library, EntryPoint = "_ZN2at8autocast20set_autocast_enabledEN3c1010DeviceTypeEb")]
    internal static partial void SetAutocastEnabled(sbyte device, [MarshalAs(UnmanagedType.U1)] bool enabled);

    [LibraryImport(Library, EntryPoint = "_ZN2at8autocast19is_autocast_enabledEN3c1010DeviceTypeE")]
    [return: MarshalAs(UnmanagedType.U1)]
    internal static partial bool IsAutocastEnabled(sbyte device);

    [LibraryImport(Library, EntryPoint = "_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE")]
    internal static partial void SetAutocastDtype(sbyte device, sbyte dtype);

    [LibraryImport(Library, EntryPoint = "_ZN2at8autocast18get_autocast_dtypeEN3c1010DeviceTypeE")]
    internal static partial sbyte GetAutocastDtype(sbyte device);

    [LibraryImport(Library, EntryPoint = "_ZN2at8autocast17increment_nestingEv")]
    internal static partial int IncrementAutocastNesting();

    [LibraryImport(Library, EntryPoint = "_ZN2at8autocast17decrement_nestingEv")]
    internal static partial int DecrementAutocastNesting();

    [LibraryImport(Library, EntryPoint = "_ZN2at8autocast11clear_cacheEv")]
    internal static partial void ClearAutocastCache();

    /// <summary>
    /// What a <see cref="Trainer"/> or <see cref="Fabric"/> does when it is built: <see cref="KeepFreedMemory"/>, and
    /// NNPACK off where it cannot start on this CPU (unless <see cref="NnpackEnabled"/> was set first). Each part acts
    /// once per process; later calls do nothing.
    /// </summary>
    public static void ApplyDefaults()
    {
        KeepFreedMemory();
        DecideNnpack();
    }

    /// <summary>
    /// Keeps memory that libtorch frees in glibc's heap for the next step, on Linux, as preloading jemalloc or tcmalloc
    /// does for PyTorch (mmap threshold 32 MiB, trim threshold 256 MiB, top pad 64 MiB). libtorch frees each step's
    /// tensors and allocates them again in the next; with glibc's defaults that memory goes back to the OS and is
    /// faulted in again. Applied once per process; a <c>MALLOC_*</c> variable or a <c>glibc.malloc</c> tunable in
    /// <c>GLIBC_TUNABLES</c> keeps your own settings instead.
    /// </summary>
    public static void KeepFreedMemory() => GlibcMalloc.KeepFreedMemory();

    /// <summary>
    /// True when NNPACK starts on this CPU. Asked once per process, silently. Where it is false (a CPU or VM whose
    /// cache sizes NNPACK cannot read, say), libtorch would try NNPACK for every convolution it does not give to oneDNN
    /// (batch 1 on the CPU), fail, and print "Could not initialize NNPACK! Reason: Unsupported hardware."
    /// </summary>
    public static bool NnpackAvailable => s_nnpackAvailable.Value;

    /// <summary>
    /// libtorch's NNPACK switch (PyTorch's <c>torch.backends.nnpack.enabled</c>; on by default in libtorch).
    /// <see cref="ApplyDefaults"/> turns it off where <see cref="NnpackAvailable"/> is false; setting it yourself,
    /// before or after, overrides that.
    /// </summary>
    public static bool NnpackEnabled
    {
        get
        {
            torch.InitializeDeviceType(DeviceType.CPU);
            return UserEnabledNnpack(GlobalContext());
        }
        set
        {
            torch.InitializeDeviceType(DeviceType.CPU);
            s_nnpackChosen = true;
            SetUserEnabledNnpack(GlobalContext(), value);
        }
    }

    private static void DecideNnpack()
    {
        if (Interlocked.Exchange(ref s_nnpackDecided, 1) == 1 || s_nnpackChosen || NnpackAvailable) return;
        SetUserEnabledNnpack(GlobalContext(), false);
    }

    private static bool ProbeNnpack()
    {
        // libtorch must be loaded the way TorchSharp loads it before its symbols are bound here.
        torch.InitializeDeviceType(DeviceType.CPU);
        return NnpInitialize() == NnpackSuccess;
    }

    /// <summary>Turns on deterministic algorithms (<c>torch.use_deterministic_algorithms(True)</c>) until disposed.</summary>
    internal static IDisposable UseDeterministicAlgorithms()
    {
        var context = GlobalContext();
        var previous = DeterministicAlgorithms(context);
        SetDeterministicAlgorithms(context, true, false);
        return new Restore(() => SetDeterministicAlgorithms(context, previous, false));
    }

    /// <summary>True while deterministic algorithms are on.</summary>
    internal static bool DeterministicAlgorithmsEnabled => DeterministicAlgorithms(GlobalContext());

    private sealed class Restore(Action undo) : IDisposable
    {
        public void Dispose() => undo();
    }
}
