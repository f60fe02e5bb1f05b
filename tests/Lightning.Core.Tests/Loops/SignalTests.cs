using System.Globalization;
using System.Text.RegularExpressions;
using Lightning.Checkpoints;
using Lightning.Testing;

namespace Lightning.Core.Tests.Loops;

/// <summary>
/// SIGTERM and SIGINT during a fit (the worker's "signal" scenario saves a checkpoint every step, all kept, plus
/// <c>OnExceptionCheckpoint</c>): the fit stops at a step boundary, every checkpoint asked for is on disk, and the
/// process exits with 128 + the signal number.
/// </summary>
public class SignalTests
{
    [Theory]
    [InlineData(15, 143)]
    [InlineData(2, 130)]
    public void Signal_StopsAtAStepBoundary_FlushesEveryQueuedCheckpoint_AndExitsWithTheConventionalCode(int signal, int exitCode)
    {
        using var folder = new TempDirectory();
        using var run = WorkerProcess.Start("signal", folder.Path);
        var marker = folder.Combine("running");
        // The worker writes the marker at step 40, with checkpoints of the steps before it still queued in the background writer.
        Wait.Until(() => File.Exists(marker) || run.Process.HasExited, TimeSpan.FromMinutes(1));
        Assert.True(File.Exists(marker), $"the worker did not start training:\n{run.Output()}");
        WorkerProcess.Signal(run.Process.Id, signal);

        Assert.True(run.Process.WaitForExit(TimeSpan.FromSeconds(30)), "the worker did not stop within 30 s of the signal");
        var output = run.Output();
        Assert.True(exitCode == run.Process.ExitCode, $"exit code {run.Process.ExitCode}, expected {exitCode}:\n{output}");

        // OnExceptionCheckpoint saw the interruption; its step is where the fit stopped.
        var stopped = Checkpoint.Load(folder.Combine("on_exception.ckpt")).GlobalStep;
        Assert.True(stopped >= 40, $"stopped at step {stopped}");
        var steps = Directory.EnumerateFiles(folder.Combine("ckpt"), "epoch=*-step=*.ckpt")
            .Select(f => long.Parse(Regex.Match(Path.GetFileName(f), @"step=(\d+)").Groups[1].Value, CultureInfo.InvariantCulture))
            .Order().ToList();
        Assert.Equal(Enumerable.Range(1, (int)stopped).Select(i => (long)i), steps);
        Assert.Equal(stopped, Checkpoint.Load(folder.Combine("ckpt", "last.ckpt")).GlobalStep);
        Assert.Empty(Directory.EnumerateFiles(folder.Path, "*.tmp", SearchOption.AllDirectories));
    }
}
