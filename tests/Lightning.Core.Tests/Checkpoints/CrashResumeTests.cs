using System.Diagnostics;
using Lightning.Checkpoints;
using Lightning.Testing;

namespace Lightning.Core.Tests.Checkpoints;

/// <summary>
/// Fault-tolerant training: the worker's "resumable" scenario trains 30 epochs from ckptPath "last", saving every 5
/// steps. Killed with SIGKILL again and again (some kills aimed at a checkpoint write in progress) and restarted each
/// time, it must end with exactly the weights of a run that was never interrupted, and leave no temporary file.
/// </summary>
public class CrashResumeTests
{
    private const int Kills = 20;

    [Fact]
    public void KilledTwentyTimes_IncludingMidWrite_ResumesToTheUninterruptedWeightsBitForBit()
    {
        using var straight = new TempDirectory();
        RunToEnd(straight.Path);
        var expected = File.ReadAllText(straight.Combine("final.txt"));

        // Kills at random moments until one run gets to the end; then that run's folder is checked, and if kills remain,
        // a new run starts in a fresh folder. How far each run gets depends on the machine's speed; the count does not.
        var random = new Random(1234);
        int killed = 0, midWrite = 0, runs = 0;
        while (killed < Kills)
        {
            using var crashed = new TempDirectory();
            var checkpoints = crashed.Combine("ckpt");
            runs++;
            while (killed < Kills)
            {
                using var run = WorkerProcess.Start("resumable", crashed.Path);
                if (!WaitForTraining(run, crashed.Path)) break;
                // A random moment; every third kill then waits for the next checkpoint write to be under way.
                Thread.Sleep(random.Next(200, 2000));
                if (killed % 3 == 2) WaitForTempFile(checkpoints, run, TimeSpan.FromSeconds(3));
                if (run.Process.HasExited) break;
                var pid = run.Process.Id;
                run.Process.Kill();
                run.Process.WaitForExit();
                killed++;
                // A temporary file of this very process: it died while writing a checkpoint.
                if (Directory.Exists(checkpoints) && Directory.EnumerateFiles(checkpoints, $".*.{pid}.*.tmp").Any()) midWrite++;
                foreach (var marker in Directory.EnumerateFiles(crashed.Path, "running.*")) File.Delete(marker);
            }
            RunToEnd(crashed.Path);
            Assert.Equal(expected, File.ReadAllText(crashed.Combine("final.txt")));
            Assert.Empty(Directory.EnumerateFiles(crashed.Path, "*.tmp", SearchOption.AllDirectories));
            // Every file left is a complete checkpoint.
            foreach (var file in Directory.EnumerateFiles(checkpoints)) Assert.True(Checkpoint.Load(file).GlobalStep > 0, file);
        }

        Console.WriteLine($"killed {killed} times ({midWrite} while a checkpoint was being written) over {runs} run(s), each resumed to the uninterrupted weights");
        Assert.True(midWrite > 0, "no kill landed while a checkpoint was being written");
    }

    private static void RunToEnd(string folder)
    {
        using var run = WorkerProcess.Start("resumable", folder);
        Assert.True(run.Process.WaitForExit(TimeSpan.FromMinutes(3)), "the run did not finish within 3 minutes");
        Assert.True(run.Process.ExitCode == 0, $"the run failed:\n{run.Output()}");
    }

    /// <summary>Waits until this process reports training (its marker file); false if it ended first.</summary>
    private static bool WaitForTraining(WorkerProcess run, string folder)
    {
        var marker = Path.Combine(folder, $"running.{run.Process.Id}");
        var clock = Stopwatch.StartNew();
        while (!File.Exists(marker))
        {
            if (run.Process.HasExited) return false;
            Assert.True(clock.Elapsed < TimeSpan.FromMinutes(1), $"the worker did not start training:\n{run.Output()}");
            Thread.Sleep(5);
        }
        return true;
    }

    private static void WaitForTempFile(string folder, WorkerProcess run, TimeSpan limit)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < limit && !run.Process.HasExited)
        {
            if (Directory.Exists(folder) && Directory.EnumerateFiles(folder, ".*.tmp").Any()) return;
            Thread.SpinWait(1000);
        }
    }
}
