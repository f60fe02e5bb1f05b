using System.Runtime.InteropServices;

namespace Lightning;

/// <summary>
/// A stage stopped because the process received SIGINT (Ctrl+C) or SIGTERM: raised at the next step boundary, so
/// <c>OnException</c> callbacks (an <see cref="Callbacks.OnExceptionCheckpoint"/> writes its file here) and the module
/// hear of it and queued checkpoints are flushed; then the process exits with the conventional code, 128 + the signal
/// number (130 or 143), as Lightning exits on an interrupt.
/// </summary>
public sealed class TrainingInterruptedException : OperationCanceledException
{
    /// <summary>An interruption by <paramref name="signal"/>.</summary>
    public TrainingInterruptedException(PosixSignal signal)
        : base($"Stopped by {Name(signal)} at a step boundary; queued checkpoints are flushed and the process exits with code {ExitCodeOf(signal)}.")
    {
        Signal = signal;
    }

    /// <summary>The signal received: <see cref="PosixSignal.SIGINT"/> or <see cref="PosixSignal.SIGTERM"/>.</summary>
    public PosixSignal Signal { get; }

    /// <summary>The process exit code that reports the signal: 130 for SIGINT, 143 for SIGTERM.</summary>
    public int ExitCode => ExitCodeOf(Signal);

    private static int ExitCodeOf(PosixSignal signal) => 128 + (signal == PosixSignal.SIGINT ? 2 : 15);

    private static string Name(PosixSignal signal) => signal == PosixSignal.SIGINT ? "SIGINT" : "SIGTERM";
}
