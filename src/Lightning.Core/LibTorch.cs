using System.Runtime.InteropServices;

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
