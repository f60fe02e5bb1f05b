using System.Diagnostics;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace Lightning.GpuKit.Tests;

/// <summary>
/// Issue #20, acceptance 1: the GPU kit builds, stays within 60 MiB, holds no libtorch, and on this machine (no GPU)
/// scripts/gpu-run.sh passes its CPU checks against a libtorch folder outside the kit and outside any build output,
/// while the CUDA checks say "skipped: no CUDA".
/// </summary>
public sealed partial class GpuKitTests(ITestOutputHelper output)
{
    private const long Limit = 60L * 1024 * 1024;
    private static readonly string[] CpuChecks = ["load", "train-32-true", "train-bf16-mixed", "autocast-cpu", "ddp", "checkpoint", "onnx"];
    private static readonly string[] CudaChecks = ["cuda-devices", "moves", "train-16-mixed", "autocast-cuda"];

    [GpuKitFact]
    public void KitBuildsWithinLimitWithoutLibTorchAndPassesItsCpuChecks()
    {
        var root = RepositoryRoot();
        var folder = Directory.CreateTempSubdirectory("gpu-kit-test").FullName;
        try
        {
            var kit = Path.Combine(folder, "gpu-kit.tar.xz");
            var clock = Stopwatch.StartNew();
            var (built, buildLog) = Run(root, TimeSpan.FromMinutes(12), [], "bash", "scripts/gpu-kit.sh", kit);
            Assert.True(built == 0, $"gpu-kit.sh exited with {built}:\n{buildLog}");
            output.WriteLine($"built in {clock.Elapsed.TotalSeconds:0} s: {buildLog.Trim().Split('\n')[^1]}");

            var size = new FileInfo(kit).Length;
            Assert.InRange(size, 1, Limit);
            var (listed, listing) = Run(root, TimeSpan.FromMinutes(2), [], "tar", "-tJf", kit);
            Assert.Equal(0, listed);
            var entries = listing.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.DoesNotContain(entries, e => Path.GetFileName(e).StartsWith("libtorch", StringComparison.Ordinal));
            foreach (var expected in new[] { "gpu-kit/app/GpuCheck", "gpu-kit/app/libLibTorchSharp.so", "gpu-kit/app/lightning_gpu.py",
                         "gpu-kit/mpi/bin/mpiexec", "gpu-kit/mpi/bin/mpiexec.hydra", "gpu-kit/mpi/bin/hydra_pmi_proxy", "gpu-kit/mpi/lib/libmpich.so.12" })
                Assert.Contains(expected, entries);

            var libtorch = GpuKitFactAttribute.LibTorchFolder!;
            var run = Stopwatch.StartNew();
            var (code, log) = Run(root, TimeSpan.FromMinutes(6),
                new() { ["LIBTORCH_DIR"] = libtorch, ["GPU_RUN_BENCH"] = "0", ["LD_LIBRARY_PATH"] = null },
                "bash", "scripts/gpu-run.sh", kit);
            output.WriteLine(log);
            output.WriteLine($"gpu-run.sh took {run.Elapsed.TotalSeconds:0} s; the whole test {clock.Elapsed.TotalSeconds:0} s; kit {size} bytes");

            var checks = CheckLine().Matches(log).ToDictionary(m => m.Groups["name"].Value, m => (Status: m.Groups["status"].Value, Detail: m.Groups["detail"].Value));
            foreach (var name in CpuChecks)
            {
                Assert.True(checks.TryGetValue(name, out var check), $"no line for check {name}:\n{log}");
                Assert.True(check.Status == "ok", $"check {name}: {check.Status} {check.Detail}");
            }
            foreach (var name in CudaChecks)
                Assert.Equal("skipped: no CUDA", checks[name].Status);
            Assert.Contains($"libtorch_cpu.so from {Path.Combine(libtorch, "libtorch_cpu.so")}", checks["load"].Detail);
            // "ddp" ran on the kit's own MPICH, not the machine's.
            Assert.Matches(@"via \S+/gpu-kit/mpi/bin/mpiexec and \S+/gpu-kit/mpi/lib/libmpich\.so\.12 ", checks["ddp"].Detail);
            Assert.Contains($"checks: {CpuChecks.Length} ok, 0 failed, {CudaChecks.Length} skipped (no CUDA)", log);
            Assert.Contains("bench: skipped (GPU_RUN_BENCH=0)", log);
            Assert.True(code == 0, $"gpu-run.sh exited with {code}");
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    // "check <name>: ok (<detail>)", "check <name>: FAIL (<detail>)" or "check <name>: skipped: no CUDA".
    [GeneratedRegex(@"^check (?<name>[a-z0-9-]+): (?<status>ok|FAIL|skipped: no CUDA)(?: \((?<detail>.*)\))?$", RegexOptions.Multiline)]
    private static partial Regex CheckLine();

    private static string RepositoryRoot()
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
            if (File.Exists(Path.Combine(folder.FullName, "Lightning.sln"))) return folder.FullName;
        throw new InvalidOperationException($"Lightning.sln was not found above {AppContext.BaseDirectory}.");
    }

    /// <summary>Runs a command in <paramref name="folder"/>; output and errors together. A null environment value removes the variable.</summary>
    private static (int Code, string Output) Run(string folder, TimeSpan limit, Dictionary<string, string?> environment, string file, params string[] arguments)
    {
        var start = new ProcessStartInfo(file) { WorkingDirectory = folder, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        foreach (var (name, value) in environment)
        {
            if (value is null) start.Environment.Remove(name);
            else start.Environment[name] = value;
        }
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(limit))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            Assert.Fail($"{file} {string.Join(' ', arguments)} did not finish within {limit}:\n{stdout.Result}{stderr.Result}");
        }
        return (process.ExitCode, stdout.Result + stderr.Result);
    }
}
