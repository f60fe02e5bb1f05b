using System.Collections.Concurrent;
using Microsoft.Extensions.Logging;

namespace Lightning.Serving.Tests.Inference;

/// <summary>Collects log lines of every category; a test can wait for a line instead of sleeping.</summary>
internal sealed class LogCollector : ILoggerProvider
{
    private readonly object _gate = new();

    public ConcurrentQueue<(LogLevel Level, string Message)> Entries { get; } = new();

    public ILogger CreateLogger(string categoryName) => new Logger(this);

    /// <summary>Waits until a line matching <paramref name="match"/> was logged (already or later); false after <paramref name="timeout"/>.</summary>
    public bool WaitFor(Func<(LogLevel Level, string Message), bool> match, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        lock (_gate)
        {
            while (!Entries.Any(match))
            {
                var left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero) return false;
                Monitor.Wait(_gate, left);
            }
            return true;
        }
    }

    public void Dispose() { }

    private void Add(LogLevel level, string message)
    {
        lock (_gate)
        {
            Entries.Enqueue((level, message));
            Monitor.PulseAll(_gate);
        }
    }

    private sealed class Logger(LogCollector owner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
        public bool IsEnabled(LogLevel logLevel) => true;
        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            owner.Add(logLevel, formatter(state, exception));
    }
}
