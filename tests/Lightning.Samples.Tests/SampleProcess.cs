using System.Diagnostics;
using System.Text;

namespace Lightning.Samples.Tests;

/// <summary>
/// A sample run as its own process ("dotnet samples/X/bin/&lt;configuration&gt;/net10.0/X.dll"), built beside this test
/// project through its ProjectReferences, in a working folder the test chooses.
/// </summary>
public sealed class SampleProcess : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _output = new(), _error = new();
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly string? _startedLine;

    private SampleProcess(string sample, string workingDirectory, IEnumerable<string> args, string[] launcher, string? startedLine,
        IReadOnlyDictionary<string, string>? environment = null)
    {
        _startedLine = startedLine;
        var start = new ProcessStartInfo(launcher is [var program, ..] ? program : "dotnet")
        {
            WorkingDirectory = workingDirectory, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (var arg in launcher.Skip(1)) start.ArgumentList.Add(arg);
        if (launcher.Length > 0) start.ArgumentList.Add("dotnet");
        start.ArgumentList.Add(Dll(sample));
        foreach (var arg in args) start.ArgumentList.Add(arg);
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) start.Environment[name] = value;
        _process = new Process { StartInfo = start };
        _process.OutputDataReceived += (_, e) => OnLine(_output, e.Data);
        _process.ErrorDataReceived += (_, e) => OnLine(_error, e.Data);
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
    }

    /// <summary>The repository root (the folder of Lightning.sln).</summary>
    public static string RepositoryRoot { get; } = FindRoot();

    /// <summary>What the process wrote to stdout so far.</summary>
    public string Output { get { lock (_output) return _output.ToString(); } }

    /// <summary>What the process wrote to stderr so far.</summary>
    public string Error { get { lock (_error) return _error.ToString(); } }

    /// <summary>Starts <paramref name="sample"/>; <see cref="WaitStarted"/> waits for <paramref name="startedLine"/> on its stdout.</summary>
    public static SampleProcess Start(string sample, string workingDirectory, IEnumerable<string> args, string? startedLine = null) =>
        new(sample, workingDirectory, args, [], startedLine);

    /// <summary>Runs <paramref name="sample"/> to its end and asserts exit code 0; returns its stdout.</summary>
    public static async Task<string> RunToEnd(string sample, string workingDirectory, TimeSpan timeout, params string[] args) =>
        await RunToEnd(Start(sample, workingDirectory, args), timeout);

    /// <summary>Runs <paramref name="sample"/> with extra environment variables to its end and asserts exit code 0; returns its stdout.</summary>
    public static async Task<string> RunToEnd(string sample, string workingDirectory, TimeSpan timeout, IReadOnlyDictionary<string, string> environment, params string[] args) =>
        await RunToEnd(new SampleProcess(sample, workingDirectory, args, [], null, environment), timeout);

    /// <summary>Runs <paramref name="sample"/> under <c>mpiexec -n <paramref name="ranks"/></c> and asserts exit code 0; returns stdout.</summary>
    public static async Task<string> RunUnderMpiexec(int ranks, string sample, string workingDirectory, TimeSpan timeout, params string[] args) =>
        await RunToEnd(new SampleProcess(sample, workingDirectory, args, ["mpiexec", "-n", ranks.ToString(System.Globalization.CultureInfo.InvariantCulture)], null), timeout);

    /// <summary>Completes when stdout shows the line given at start (e.g. ASP.NET's "Application started").</summary>
    public async Task WaitStarted(TimeSpan timeout)
    {
        var exited = _process.WaitForExitAsync();
        var first = await Task.WhenAny(_started.Task, exited, Task.Delay(timeout));
        if (first == _started.Task) return;
        throw new Xunit.Sdk.XunitException(first == exited
            ? $"the sample exited with {_process.ExitCode} before '{_startedLine}'.\nstdout:\n{Output}\nstderr:\n{Error}"
            : $"no '{_startedLine}' within {timeout.TotalSeconds} s.\nstdout:\n{Output}\nstderr:\n{Error}");
    }

    public void Dispose()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        _process.WaitForExit();
        _process.Dispose();
    }

    private static async Task<string> RunToEnd(SampleProcess run, TimeSpan timeout)
    {
        using (run)
        {
            using var cancel = new CancellationTokenSource(timeout);
            try { await run._process.WaitForExitAsync(cancel.Token); }
            catch (OperationCanceledException)
            {
                throw new Xunit.Sdk.XunitException($"'{run._process.StartInfo.FileName} {string.Join(' ', run._process.StartInfo.ArgumentList)}' " +
                    $"ran past {timeout.TotalSeconds} s.\nstdout:\n{run.Output}\nstderr:\n{run.Error}");
            }
            run._process.WaitForExit();   // drains the redirected streams
            Assert.True(run._process.ExitCode == 0, $"exit code {run._process.ExitCode}.\nstdout:\n{run.Output}\nstderr:\n{run.Error}");
            return run.Output;
        }
    }

    private void OnLine(StringBuilder sink, string? line)
    {
        if (line is null) return;
        lock (sink) sink.AppendLine(line);
        if (_startedLine is not null && line.Contains(_startedLine, StringComparison.Ordinal)) _started.TrySetResult();
    }

    // The samples' output folders mirror this project's: tests/Lightning.Samples.Tests/bin/<configuration>/<tfm>/.
    private static string Dll(string sample)
    {
        var here = AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar);
        var tfm = Path.GetFileName(here);
        var configuration = Path.GetFileName(Path.GetDirectoryName(here)!);
        var dll = Path.Combine(RepositoryRoot, "samples", sample, "bin", configuration, tfm, sample + ".dll");
        return File.Exists(dll) ? dll : throw new FileNotFoundException($"the sample '{sample}' is not built at '{dll}' (build tests/Lightning.Samples.Tests, which builds every sample).", dll);
    }

    private static string FindRoot()
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
            if (File.Exists(Path.Combine(folder.FullName, "Lightning.sln"))) return folder.FullName;
        throw new InvalidOperationException($"no Lightning.sln above '{AppContext.BaseDirectory}'.");
    }
}
