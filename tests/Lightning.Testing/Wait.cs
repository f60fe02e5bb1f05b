using System.Diagnostics;

namespace Lightning.Testing;

/// <summary>
/// Bounded waits for a state the code under test reaches (a queue length, a generation, a file): the test goes on as
/// soon as it holds, and a generous bound only decides how long a broken build takes to fail. Never a fixed sleep.
/// </summary>
public static class Wait
{
    /// <summary>How long a wait lasts before it fails, unless told: long enough for a loaded 2-core machine.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(30);

    /// <summary>Waits, blocking, until <paramref name="condition"/> holds; false after the timeout.</summary>
    public static bool Until(Func<bool> condition, TimeSpan? timeout = null)
    {
        var clock = Stopwatch.StartNew();
        var limit = timeout ?? DefaultTimeout;
        while (!condition())
        {
            if (clock.Elapsed > limit) return condition();
            Thread.Sleep(10);
        }
        return true;
    }

    /// <summary>Waits, without blocking a thread, until <paramref name="condition"/> holds; throws naming <paramref name="what"/> after the timeout.</summary>
    public static async Task UntilAsync(Func<bool> condition, string what, TimeSpan? timeout = null)
    {
        var clock = Stopwatch.StartNew();
        var limit = timeout ?? DefaultTimeout;
        while (!condition())
        {
            if (clock.Elapsed > limit) throw new TimeoutException($"timed out after {limit.TotalSeconds:0} s waiting for {what}");
            await Task.Delay(10);
        }
    }

    /// <summary>Waits until an asynchronous <paramref name="condition"/> (a request, say) holds; throws naming <paramref name="what"/> after the timeout.</summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, string what, TimeSpan? timeout = null)
    {
        var clock = Stopwatch.StartNew();
        var limit = timeout ?? DefaultTimeout;
        while (!await condition())
        {
            if (clock.Elapsed > limit) throw new TimeoutException($"timed out after {limit.TotalSeconds:0} s waiting for {what}");
            await Task.Delay(10);
        }
    }
}
