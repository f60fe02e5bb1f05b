using System.Runtime.InteropServices;
using TorchSharp;

namespace Lightning;

/// <summary>libtorch switches that TorchSharp 0.107 does not expose, called by their exported C++ names.</summary>
internal static partial class LibTorch
{
    private const string Library = "libtorch_cpu";

    [LibraryImport(Library, EntryPoint = "_ZN2at13globalContextEv")]
    private static partial IntPtr GlobalContext();

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

    /// <summary>Turns on deterministic algorithms (<c>torch.use_deterministic_algorithms(True)</c>) until disposed.</summary>
    public static IDisposable UseDeterministicAlgorithms()
    {
        var context = GlobalContext();
        var previous = DeterministicAlgorithms(context);
        SetDeterministicAlgorithms(context, true, false);
        return new Restore(() => SetDeterministicAlgorithms(context, previous, false));
    }

    /// <summary>True while deterministic algorithms are on.</summary>
    public static bool DeterministicAlgorithmsEnabled => DeterministicAlgorithms(GlobalContext());

    private sealed class Restore(Action undo) : IDisposable
    {
        public void Dispose() => undo();
    }
}
