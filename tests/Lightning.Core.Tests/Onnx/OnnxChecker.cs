using System.Diagnostics;
using Lightning.Onnx.Proto;

namespace Lightning.Core.Tests.Onnx;

/// <summary>
/// The reference ONNX checker (<c>onnx.checker.check_model</c> with full shape inference) in one python3 process
/// shared by every test, so each model costs a file read rather than a Python start.
/// </summary>
internal static class OnnxChecker
{
    private const string Script = """
        import sys, onnx
        print(onnx.defs.onnx_opset_version(), onnx.IR_VERSION, flush=True)
        for line in sys.stdin:
            try:
                onnx.checker.check_model(onnx.load(line.strip()), full_check=True)
                print("ok", flush=True)
            except Exception as error:
                print("error " + str(error).replace("\n", " "), flush=True)
        """;

    private static readonly Lazy<Checker?> s_checker = new(Start);

    /// <summary>Why models are not checked here, or null when the checker runs.</summary>
    public static string? Unavailable => s_checker.Value is null
        ? "no python3 with the onnx package was found (tried python3 and /usr/bin/python3; Debian: apt-get install python3-onnx)"
        : null;

    /// <summary>
    /// Fails when the checker rejects the model. Models newer than the installed checker knows (opset or IR version)
    /// are left to ONNX Runtime, which loads every one of them in the parity tests.
    /// </summary>
    public static void AssertValid(string path)
    {
        if (s_checker.Value is not { } checker) return;
        var model = ModelProto.Parser.ParseFrom(File.ReadAllBytes(path));
        if (model.OpsetImport.Any(o => o.Version > checker.MaxOpset) || model.IrVersion > checker.MaxIrVersion) return;
        string? verdict;
        lock (checker)
        {
            checker.Process.StandardInput.WriteLine(path);
            verdict = checker.Process.StandardOutput.ReadLine();
        }
        Assert.True(verdict == "ok", $"The ONNX checker rejects {Path.GetFileName(path)}: {verdict ?? "the checker process ended"}");
    }

    private static Checker? Start()
    {
        foreach (var python in new[] { "python3", "/usr/bin/python3" })
        {
            try
            {
                var process = Process.Start(new ProcessStartInfo(python, ["-c", Script])
                {
                    RedirectStandardInput = true,
                    RedirectStandardOutput = true,
                    RedirectStandardError = true,
                });
                if (process is null) continue;
                // stderr is drained so a warning can never block the checker.
                process.ErrorDataReceived += (_, _) => { };
                process.BeginErrorReadLine();
                var versions = process.StandardOutput.ReadLine()?.Split(' ');
                if (versions is [var opset, var ir] && int.TryParse(opset, out var maxOpset) && long.TryParse(ir, out var maxIr))
                    return new Checker(process, maxOpset, maxIr);
                process.Kill();
                process.Dispose();
            }
            catch (System.ComponentModel.Win32Exception)
            {
                // not installed
            }
        }
        return null;
    }

    private sealed record Checker(Process Process, int MaxOpset, long MaxIrVersion);
}
