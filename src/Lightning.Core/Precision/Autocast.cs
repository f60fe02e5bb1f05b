using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Precision;

/// <summary>
/// libtorch's own automatic mixed precision (<c>torch.autocast</c>): inside a scope, ops that gain from lower
/// precision (matmul, linear, conv) run in the chosen dtype while the rest stay in float32. Autocast state is per
/// thread, as in PyTorch: open and close a scope on the same thread.
/// </summary>
public static class Autocast
{
    /// <summary>Turns autocast on for <paramref name="device"/> with <paramref name="dtype"/> until the returned scope is disposed, which restores the previous state.</summary>
    public static IDisposable Enable(DeviceType device, ScalarType dtype)
    {
        if (dtype is not (ScalarType.BFloat16 or ScalarType.Float16))
            throw new ArgumentOutOfRangeException(nameof(dtype), dtype, $"Autocast dtype {dtype} is not allowed: use BFloat16 or Float16.");
        return new Scope((sbyte)device, (sbyte)dtype);
    }

    /// <summary>True while autocast is on for <paramref name="device"/> on this thread.</summary>
    public static bool IsEnabled(DeviceType device) => LibTorch.IsAutocastEnabled((sbyte)device);

    /// <summary>The dtype autocast uses for <paramref name="device"/> on this thread.</summary>
    public static ScalarType Dtype(DeviceType device) => (ScalarType)LibTorch.GetAutocastDtype((sbyte)device);

    private sealed class Scope : IDisposable
    {
        private readonly sbyte _device;
        private readonly bool _wasEnabled;
        private readonly sbyte _previousDtype;
        private readonly int _thread = Environment.CurrentManagedThreadId;
        private bool _disposed;

        public Scope(sbyte device, sbyte dtype)
        {
            _device = device;
            _wasEnabled = LibTorch.IsAutocastEnabled(device);
            _previousDtype = LibTorch.GetAutocastDtype(device);
            LibTorch.SetAutocastEnabled(device, true);
            LibTorch.SetAutocastDtype(device, dtype);
            LibTorch.IncrementAutocastNesting();
        }

        public void Dispose()
        {
            if (_disposed) return;
            if (Environment.CurrentManagedThreadId != _thread)
                throw new InvalidOperationException("An autocast scope must be closed on the thread that opened it: libtorch keeps autocast state per thread.");
            _disposed = true;
            // As torch.autocast.__exit__: the cast-weight cache lives until the outermost scope closes.
            if (LibTorch.DecrementAutocastNesting() == 0) LibTorch.ClearAutocastCache();
            LibTorch.SetAutocastEnabled(_device, _wasEnabled);
            LibTorch.SetAutocastDtype(_device, _previousDtype);
        }
    }
}
