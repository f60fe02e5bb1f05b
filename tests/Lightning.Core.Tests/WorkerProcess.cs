using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;

namespace Lightning.Core.Tests;

/// <summary>
/// The test worker (tests/Lightning.Core.Worker) in a child process, alone or under <c>mpiexec -n N</c>, its output
/// captured: for what one test process cannot show (several ranks, crashes, signals). Disposing kills what is left.
/// </summary>
internal sealed class WorkerProcess : IDisposable
{
    private readonly StringBuilder _output = new();

    private WorkerProcess(Process process) => Process = process;

    public Process Process { get; }

    /// <summary>The worker is built next to this project (see the ProjectReference): .../Lightning.Core.Worker/bin/&lt;config&gt;/&lt;tfm&gt;/.</summary>
    public static string DllPath
    {
        get
        {
            var worker = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory.Replace("Lightning.Core.Tests", "Lightning.Core.Worker"), "Lightning.Core.Worker.dll"));
            return File.Exists(worker) ? worker : throw new FileNotFoundException($"The test worker was not built: {worker}");
        }
    }

    /// <summary>Runs <paramref name="scenario"/> on <paramref name="folder"/>; with <paramref name="ranks"/>, under mpiexec with that many processes.</summary>
    public static WorkerProcess Start(string scenario, string folder, int? ranks = null)
    {
        // A background job of a non-interactive shell (a CI script's, say) inherits SIGINT ignored, and .NET, as any Unix
        // program, leaves an inherited ignore alone: env gives a lone worker SIGINT's default back, so the signal tests
        // test the Trainer, not how the suite was started.
        var start = new ProcessStartInfo(ranks is null ? "env" : "mpiexec") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        var arguments = ranks is { } n ? new[] { "-n", n.ToString(System.Globalization.CultureInfo.InvariantCulture), "dotnet" } : ["--default-signal=INT", "dotnet"];
        foreach (var argument in arguments.Concat([DllPath, scenario, folder])) start.ArgumentList.Add(argument);
        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception e) when (ranks is not null)
        {
            throw new InvalidOperationException("The DDP tests need mpiexec: install MPICH (apt-get install -y mpich).", e);
        }
        var run = new WorkerProcess(process);
        process.OutputDataReceived += (_, e) => { lock (run._output) run._output.AppendLine(e.Data); };
        process.ErrorDataReceived += (_, e) => { lock (run._output) run._output.AppendLine(e.Data); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return run;
    }

    public string Output()
    {
        // Only the overload without a timeout waits for the redirected output's last lines to be read.
        if (Process.WaitForExit(TimeSpan.FromSeconds(5))) Process.WaitForExit();
        lock (_output) return _output.ToString();
    }

    /// <summary>Sends SIGINT (2) or SIGTERM (15) to the process with id <paramref name="pid"/>.</summary>
    public static void Signal(int pid, int signal)
    {
        if (kill(pid, signal) != 0) throw new InvalidOperationException($"kill({pid}, {signal}) failed with errno {Marshal.GetLastPInvokeError()}.");
    }

    public void Dispose()
    {
        if (!Process.HasExited) Process.Kill(entireProcessTree: true);
        Process.WaitForExit();
        Process.Dispose();
    }

    [DllImport("libc", SetLastError = true)] private static extern int kill(int pid, int sig);
}
