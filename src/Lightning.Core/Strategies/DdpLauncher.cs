using System.Diagnostics;
using System.Reflection;

namespace Lightning.Strategies;

/// <summary>
/// Relaunches the running program under <c>mpiexec -n N</c> (Lightning's subprocess launcher for "ddp"): this process
/// only waits for the ranks and exits with their exit code, so the code before the trainer runs here once more.
/// </summary>
internal static class DdpLauncher
{
    public static void Relaunch(int processes)
    {
        var mpiexec = FindOnPath("mpiexec") ?? throw Mpi.Missing("mpiexec was not found on PATH");
        var start = new ProcessStartInfo(mpiexec) { UseShellExecute = false };
        start.ArgumentList.Add("-n");
        start.ArgumentList.Add(processes.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var host = Environment.ProcessPath ?? throw new InvalidOperationException("Strategy = \"ddp\" cannot relaunch: the path of this process is unknown. Start it with mpiexec.");
        start.ArgumentList.Add(host);
        // Under "dotnet app.dll" the host needs the app's path; an app host (bin/app) finds it itself.
        if (Path.GetFileNameWithoutExtension(host) == "dotnet")
            start.ArgumentList.Add(Assembly.GetEntryAssembly()?.Location
                ?? throw new InvalidOperationException("Strategy = \"ddp\" cannot relaunch: the entry assembly is unknown. Start it with mpiexec."));
        foreach (var argument in Environment.GetCommandLineArgs().Skip(1)) start.ArgumentList.Add(argument);
        using var process = Process.Start(start) ?? throw Mpi.Missing("mpiexec could not be started");
        process.WaitForExit();
        Environment.Exit(process.ExitCode);
    }

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries)
            .Select(directory => Path.Combine(directory, name)).FirstOrDefault(File.Exists);
}
