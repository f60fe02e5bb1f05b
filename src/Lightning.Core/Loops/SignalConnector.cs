using System.Runtime.InteropServices;

namespace Lightning.Loops;

/// <summary>
/// Catches SIGINT and SIGTERM while a stage runs (Lightning's signal connector) so that the loops stop at the next step
/// boundary instead of the process dying mid-step with checkpoints still queued. A second signal is not caught: the
/// runtime's default (terminate) applies, so a second Ctrl+C always ends a stuck process.
/// </summary>
internal sealed class SignalConnector : IDisposable
{
    private readonly PosixSignalRegistration[] _registrations;
    private volatile int _received;

    public SignalConnector()
    {
        _registrations = [PosixSignalRegistration.Create(PosixSignal.SIGINT, Handle), PosixSignalRegistration.Create(PosixSignal.SIGTERM, Handle)];
    }

    /// <summary>The first signal received, if any.</summary>
    public PosixSignal? Received => _received == 0 ? null : (PosixSignal)_received;

    private void Handle(PosixSignalContext context)
    {
        if (Interlocked.CompareExchange(ref _received, (int)context.Signal, 0) != 0) return;
        context.Cancel = true;
        Console.Error.WriteLine(
            $"{(context.Signal == PosixSignal.SIGINT ? "SIGINT" : "SIGTERM")} received: stopping at the next step boundary and flushing checkpoints (send it again to exit at once).");
    }

    public void Dispose()
    {
        foreach (var registration in _registrations) registration.Dispose();
    }
}
