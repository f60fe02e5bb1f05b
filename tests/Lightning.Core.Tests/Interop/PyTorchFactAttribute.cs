using System.Diagnostics;

namespace Lightning.Core.Tests.Interop;

/// <summary>Runs only where a python3 with torch is installed (Debian: <c>apt-get install python3-torch</c>); elsewhere reported as skipped with the reason.</summary>
public sealed class PyTorchFactAttribute : FactAttribute
{
    private static readonly Lazy<string?> Found = new(Find);

    public PyTorchFactAttribute()
    {
        if (Python is null) Skip = "no python3 with torch was found (tried python3 and /usr/bin/python3; Debian: apt-get install python3-torch)";
    }

    /// <summary>The python3 that imports torch, or null.</summary>
    public static string? Python => Found.Value;

    /// <summary>Runs <paramref name="script"/> with that python3 and returns what it printed; fails the test, with its standard error, when it exits non-zero.</summary>
    public static string Run(string script, params string[] args)
    {
        var start = new ProcessStartInfo(Python ?? throw new InvalidOperationException("no python3 with torch; gate the test with [PyTorchFact]"), ["-c", script, .. args])
        {
            RedirectStandardOutput = true, RedirectStandardError = true,
        };
        using var python = Process.Start(start)!;
        var stderr = python.StandardError.ReadToEndAsync();
        var stdout = python.StandardOutput.ReadToEnd();
        python.WaitForExit();
        Assert.True(python.ExitCode == 0, $"python3 exited with {python.ExitCode}: {stderr.Result}");
        return stdout;
    }

    private static string? Find()
    {
        foreach (var candidate in new[] { "python3", "/usr/bin/python3" })
        {
            try
            {
                using var process = Process.Start(new ProcessStartInfo(candidate, ["-c", "import torch"]) { RedirectStandardError = true, RedirectStandardOutput = true });
                if (process is null) continue;
                process.StandardError.ReadToEnd();
                if (process.WaitForExit(60_000) && process.ExitCode == 0) return candidate;
            }
            catch (System.ComponentModel.Win32Exception)
            {
                // not installed
            }
        }
        return null;
    }
}
