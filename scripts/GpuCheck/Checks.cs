using System.Diagnostics;
using System.Globalization;
using Lightning.Onnx;
using Lightning.Precision;
using Microsoft.ML.OnnxRuntime;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.GpuCheck;

/// <summary>
/// The checks, each one line. Those marked CUDA-only report "skipped: no CUDA" without a GPU; the others run on the
/// GPU when there is one and on the CPU otherwise, so a CPU-only machine still proves the kit loads, trains, runs
/// "ddp" under the kit's own mpiexec, round-trips a checkpoint and runs ONNX Runtime.
/// </summary>
internal static class Checks
{
    private const string NoCuda = "skipped: no CUDA";
    private static readonly TimeSpan DdpLimit = TimeSpan.FromSeconds(120);
    private static readonly TimeSpan CheckLimit = TimeSpan.FromSeconds(90);

    /// <summary>The checks in order: name, whether it needs CUDA, and the check (it returns its detail or throws).</summary>
    private static readonly (string Name, bool CudaOnly, Func<bool, string> Check)[] All =
    [
        ("load", false, hasCuda => $"TorchSharp for libtorch {__version__}; libtorch_cpu.so from {LoadedFrom("libtorch_cpu")}; CUDA " +
            (hasCuda ? "available" : $"not available{(LibTorchLoader.CudaFailure is { } why ? $": {why}" : "")}")),
        ("cuda-devices", true, _ => CudaDevices()),
        ("moves", true, _ => Moves()),
        ("train-32-true", false, hasCuda => Train(hasCuda ? CUDA : CPU, "32-true")),
        ("train-bf16-mixed", false, hasCuda => Train(hasCuda ? CUDA : CPU, "bf16-mixed")),
        ("train-16-mixed", true, _ => Train(CUDA, "16-mixed")),
        ("autocast-cuda", true, _ => AutocastDtypes(DeviceType.CUDA)),
        ("autocast-cpu", false, _ => AutocastDtypes(DeviceType.CPU)),
        ("ddp", false, hasCuda => Ddp(hasCuda ? "cuda" : "cpu")),
        ("checkpoint", false, hasCuda => CheckpointToCpu(hasCuda ? CUDA : CPU)),
        ("onnx", false, Onnx),
    ];

    /// <summary>
    /// Every check in its own process, so that a native crash (a libtorch symbol TorchSharp's glue cannot bind, say)
    /// costs that check alone and the rest still report. The CUDA-only ones skip where this libtorch has no CUDA
    /// library at all, and fail where it has one that did not start.
    /// </summary>
    public static int RunAll()
    {
        var hasCuda = cuda.is_available();
        var self = Environment.ProcessPath ?? throw new InvalidOperationException("The path of this program is unknown.");
        int ok = 0, failed = 0, skipped = 0;
        foreach (var (name, cudaOnly, _) in All)
        {
            string line;
            if (cudaOnly && !hasCuda && !LibTorchLoader.HasCudaLibrary) line = $"check {name}: {NoCuda}";
            else if (cudaOnly && !hasCuda) line = $"check {name}: FAIL (libtorch_cuda.so is there but CUDA did not start: {LibTorchLoader.CudaFailure})";
            else
            {
                var limit = name == "ddp" ? DdpLimit + TimeSpan.FromSeconds(30) : CheckLimit;
                string output;
                int code;
                try
                {
                    code = RunProcess(self, ["check", name], limit, out output);
                }
                catch (CheckFailed e)
                {
                    (code, output) = (-1, e.Message);
                }
                line = output.Split('\n').Select(l => l.TrimEnd()).LastOrDefault(l => l.StartsWith($"check {name}: ", StringComparison.Ordinal))
                    ?? $"check {name}: FAIL (the check's process ended with code {code} before reporting: {Tail(output)})";
            }
            if (line.EndsWith(NoCuda, StringComparison.Ordinal)) skipped++;
            else if (line.StartsWith($"check {name}: ok", StringComparison.Ordinal)) ok++;
            else failed++;
            Console.WriteLine(line);
            Console.Out.Flush();
        }
        Console.WriteLine($"checks: {ok} ok, {failed} failed, {skipped} skipped (no CUDA)");
        return failed == 0 ? 0 : 1;
    }

    /// <summary>Runs one check in this process and prints its line; exit code 0 when it passed.</summary>
    public static int RunOne(string name)
    {
        var hasCuda = cuda.is_available();
        var (_, cudaOnly, check) = All.FirstOrDefault(c => c.Name == name);
        if (check is null) throw new ArgumentException($"There is no check '{name}'; the checks are {string.Join(", ", All.Select(c => c.Name))}.");
        if (cudaOnly && !hasCuda)
        {
            Console.WriteLine($"check {name}: {NoCuda}");
            return 0;
        }
        var clock = Stopwatch.StartNew();
        try
        {
            var detail = check(hasCuda);
            Console.WriteLine($"check {name}: ok ({detail}; {clock.Elapsed.TotalSeconds:0.0} s)");
            return 0;
        }
        catch (Exception e)
        {
            var message = e is CheckFailed ? e.Message : $"{e.GetType().Name}: {e.Message.Split('\n')[0]}";
            Console.WriteLine($"check {name}: FAIL ({message}; {clock.Elapsed.TotalSeconds:0.0} s)");
            return 1;
        }
    }

    private static void Expect(bool condition, string failure)
    {
        if (!condition) throw new CheckFailed(failure);
    }

    private static string CudaDevices()
    {
        var count = cuda.device_count();
        Expect(count >= 1, $"cuda.is_available() is true but device_count() = {count}");
        // TorchSharp has no device-name query; nvidia-smi (part of the driver) has.
        var names = RunProcess("nvidia-smi", ["--query-gpu=name", "--format=csv,noheader"], TimeSpan.FromSeconds(20), out var output) == 0
            ? string.Join(", ", output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            : "name unknown: nvidia-smi did not answer";
        return $"{count} device(s): {names}";
    }

    private static string Moves()
    {
        var trainer = NewTrainer("auto", "32-true", epochs: 1);
        Expect(trainer.RootDevice.type == DeviceType.CUDA, $"Accelerator \"auto\" chose {trainer.RootDevice}, not CUDA");
        var model = new Net();
        trainer.Fit(model, Batches(8, seed: 1));
        Expect(model.ParameterDevice == DeviceType.CUDA, $"parameters stayed on {model.ParameterDevice}");
        Expect(model.BatchDevice == DeviceType.CUDA, $"batches arrived on {model.BatchDevice}");
        return $"\"auto\" chose {trainer.RootDevice}; parameters and batches on CUDA";
    }

    /// <summary>
    /// One training run in <paramref name="precision"/>: the loss must fall, the forward must run in the precision's dtype,
    /// and the weights must stay float32 and finite. In "16-mixed" an inf injected into one step's loss must skip that
    /// step (weights unchanged) and halve the GradScaler's scale.
    /// </summary>
    private static string Train(Device device, string precision)
    {
        var trainer = NewTrainer(device.type == DeviceType.CUDA ? "cuda" : "cpu", precision, epochs: 4);
        var injectAt = precision == "16-mixed" ? 5 : -1;
        var model = new Net { InjectInfAt = injectAt };
        var batches = Batches(16, seed: 2);
        trainer.Fit(model, batches);
        Expect(trainer.Precision == precision, $"the trainer runs \"{trainer.Precision}\"");
        var expectedDtype = precision switch { "bf16-mixed" => ScalarType.BFloat16, "16-mixed" => ScalarType.Float16, _ => ScalarType.Float32 };
        Expect(model.OutputDtype == expectedDtype, $"forward ran in {model.OutputDtype}, expected {expectedDtype}");
        Expect(model.ParameterDtype == ScalarType.Float32, $"weights are {model.ParameterDtype}, expected Float32");
        Expect(model.ParameterDevice == device.type, $"weights are on {model.ParameterDevice}, expected {device.type}");
        Expect(model.AllFinite(), "weights hold inf or NaN after training");
        var (first, last) = (model.Losses[0], model.Losses.Where(double.IsFinite).Last());
        Expect(last < 0.8 * first, $"loss went from {first:0.0000} to {last:0.0000}, expected a fall of at least 20%");
        var detail = $"{device.type}, forward {expectedDtype}, loss {first:0.000} -> {last:0.000}";
        if (injectAt < 0) return detail;
        Expect(model.ScaleAfterInf is { } after && model.ScaleBeforeInf is { } before && after == before / 2,
            $"GradScaler scale went from {model.ScaleBeforeInf} to {model.ScaleAfterInf} over the step with an injected inf, expected it halved");
        Expect(model.WeightsUnchangedOverInf, "the step with an injected inf changed the weights, expected it skipped");
        return $"{detail}; injected inf: step skipped, scale {model.ScaleBeforeInf} -> {model.ScaleAfterInf}";
    }

    /// <summary>Autocast's op lists as PyTorch has them: linear and matmul in the low dtype, softmax widened to float32.</summary>
    private static string AutocastDtypes(DeviceType deviceType)
    {
        var device = new Device(deviceType, 0);
        if (deviceType == DeviceType.CPU) device = CPU;
        var dtypes = deviceType == DeviceType.CUDA ? new[] { ScalarType.Float16, ScalarType.BFloat16 } : [ScalarType.BFloat16];
        var seen = new List<string>();
        foreach (var dtype in dtypes)
        {
            using var scope = NewDisposeScope();
            var layer = nn.Linear(8, 4).to(device);
            var x = randn(2, 8, device: device);
            using (Autocast.Enable(deviceType, dtype))
            {
                Expect(Autocast.IsEnabled(deviceType) && Autocast.Dtype(deviceType) == dtype, $"autocast on {deviceType} did not report {dtype} as on");
                var linear = layer.forward(x);
                var product = x.matmul(x.t());
                var widened = nn.functional.softmax(linear, 1);
                Expect(linear.dtype == dtype, $"Linear under {dtype} autocast gave {linear.dtype}");
                Expect(product.dtype == dtype, $"matmul under {dtype} autocast gave {product.dtype}");
                // softmax is on the CUDA float32 list; the CPU list leaves it in the input's dtype.
                var softmaxExpected = deviceType == DeviceType.CUDA ? ScalarType.Float32 : dtype;
                Expect(widened.dtype == softmaxExpected, $"softmax under {dtype} autocast on {deviceType} gave {widened.dtype}, expected {softmaxExpected}");
            }
            Expect(!Autocast.IsEnabled(deviceType), $"autocast on {deviceType} stayed on after its scope closed");
            Expect(layer.forward(x).dtype == ScalarType.Float32, "Linear outside autocast did not run in Float32");
            seen.Add($"{dtype}: linear/matmul {dtype}");
        }
        return string.Join("; ", seen) + (deviceType == DeviceType.CUDA ? "; softmax Float32" : "");
    }

    /// <summary>
    /// "ddp" with 2 ranks started by mpiexec (the kit's, first on PATH): on CUDA both share device 0, gradients go through
    /// host memory. Each rank prints its weights' checksum; rank 0's broadcast and the averaged gradients make them equal.
    /// </summary>
    private static string Ddp(string device)
    {
        var mpiexec = FindOnPath("mpiexec") ?? throw new CheckFailed("mpiexec is not on PATH (the kit's mpi/bin should be first)");
        var self = Environment.ProcessPath ?? throw new CheckFailed("the path of this program is unknown");
        var code = RunProcess(mpiexec, ["-n", "2", self, "ddp-rank", device], DdpLimit, out var output);
        var ranks = output.Split('\n').Where(l => l.StartsWith("ddp-rank ", StringComparison.Ordinal))
            .Select(l => l.Split(' ')).ToDictionary(f => f[1], f => f.Skip(2).Select(kv => kv.Split('=', 2)).ToDictionary(kv => kv[0], kv => kv[1]));
        Expect(code == 0, $"mpiexec exited with {code}: {Tail(output)}");
        Expect(ranks.Keys.Order().SequenceEqual(["0/2", "1/2"]), $"expected ranks 0/2 and 1/2, got [{string.Join(", ", ranks.Keys)}]: {Tail(output)}");
        Expect(ranks.Values.All(r => r["device"].StartsWith(device, StringComparison.Ordinal)), $"ranks ran on {string.Join(", ", ranks.Values.Select(r => r["device"]))}, expected {device}");
        Expect(ranks["0/2"]["checksum"] == ranks["1/2"]["checksum"], $"the ranks' weights differ after training: {ranks["0/2"]["checksum"]} vs {ranks["1/2"]["checksum"]}");
        Expect(ranks["0/2"]["seen"] != ranks["1/2"]["seen"], "both ranks saw the same batches, expected a shard each");
        return $"2 ranks via {mpiexec} and {ranks["0/2"]["mpi"]} on {string.Join(" and ", ranks.Values.Select(r => r["device"]))}, equal weights {ranks["0/2"]["checksum"]}";
    }

    /// <summary>One rank of the "ddp" check (run under mpiexec by <see cref="Ddp"/>).</summary>
    public static int DdpRank(string device)
    {
        if (device is not ("cpu" or "cuda")) throw new ArgumentException($"ddp-rank {device}: the device must be cpu or cuda.");
        var trainer = new Trainer(new TrainerOptions
        {
            Accelerator = device, Devices = "auto", Strategy = "ddp", MaxEpochs = 2, DistributedTimeout = TimeSpan.FromSeconds(60),
            EnableProgressBar = false, EnableModelSummary = false, EnableCheckpointing = false, Loggers = [],
            DefaultRootDir = Path.Combine(Path.GetTempPath(), "gpu-check-ddp"),
        });
        var model = new Net();
        trainer.Fit(model, Batches(8, seed: 3));
        using var noGrad = no_grad();
        var checksum = model.parameters().Select(p => p.detach().cpu().to(ScalarType.Float64).sum().item<double>()).Sum();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"ddp-rank {trainer.GlobalRank}/{trainer.WorldSize} device={trainer.RootDevice} checksum={checksum:R} seen={model.SeenChecksum:R} mpi={LoadedFrom("libmpich")}"));
        return 0;
    }

    /// <summary>Trains on <paramref name="device"/>, saves a checkpoint there and loads it on the CPU: weights equal, outputs equal.</summary>
    private static string CheckpointToCpu(Device device)
    {
        var folder = Directory.CreateTempSubdirectory("gpu-check-ckpt").FullName;
        try
        {
            var trainer = NewTrainer(device.type == DeviceType.CUDA ? "cuda" : "cpu", "32-true", epochs: 1, folder);
            var model = new Net();
            trainer.Fit(model, Batches(4, seed: 4));
            var path = Path.Combine(folder, "gpu.ckpt");
            trainer.SaveCheckpoint(path);
            Expect(model.ParameterDevice == device.type, $"the trained weights are on {model.ParameterDevice}, expected {device.type}");
            var loaded = LightningModule.LoadFromCheckpoint<Net>(path);
            Expect(loaded.ParameterDevice == DeviceType.CPU, $"the loaded weights are on {loaded.ParameterDevice}, expected CPU");
            using var noGrad = no_grad();
            var saved = model.state_dict();
            foreach (var (name, value) in loaded.state_dict())
                Expect(value.eq(saved[name].cpu()).all().item<bool>(), $"'{name}' differs after the round trip");
            model.eval();
            var x = randn(3, Net.Inputs);
            Expect(loaded.forward(x).allclose(model.forward(x.to(device)).cpu(), rtol: 1e-4, atol: 1e-5), "the loaded module's output differs from the trained one's");
            return $"saved on {device.type}, loaded on CPU: {saved.Count} tensors equal";
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    /// <summary>
    /// A module exported to ONNX and run by ONNX Runtime, against TorchSharp's own forward. The CUDA provider is asked
    /// for where there is a GPU; without it ONNX Runtime runs on the CPU, as Lightning.Serving falls back (README, Serving).
    /// </summary>
    private static string Onnx(bool hasCuda)
    {
        var folder = Directory.CreateTempSubdirectory("gpu-check-onnx").FullName;
        try
        {
            var model = new Net();
            model.eval();
            var x = randn(5, Net.Inputs);
            var expected = model.forward(x).data<float>().ToArray();
            var path = Path.Combine(folder, "net.onnx");
            model.Body.ToOnnx(path, x);
            var provider = "CPUExecutionProvider";
            string? fallback = null;
            using var options = new SessionOptions();
            if (hasCuda)
            {
                try
                {
                    options.AppendExecutionProvider_CUDA(0);
                    provider = "CUDAExecutionProvider";
                }
                catch (Exception e) // the CPU package reports the missing provider in more than one way
                {
                    fallback = e.Message.Split('\n')[0];
                }
            }
            else fallback = "no CUDA";
            using var session = new InferenceSession(path, options);
            var input = new Microsoft.ML.OnnxRuntime.Tensors.DenseTensor<float>(x.data<float>().ToArray(), [5, Net.Inputs]);
            using var results = session.Run([NamedOnnxValue.CreateFromTensor(session.InputMetadata.Keys.First(), input)]);
            var actual = results.First().AsEnumerable<float>().ToArray();
            Expect(actual.Length == expected.Length, $"ONNX Runtime gave {actual.Length} values, TorchSharp {expected.Length}");
            var worst = actual.Zip(expected, (a, e) => Math.Abs(a - e)).Max();
            Expect(worst < 1e-4, $"ONNX Runtime's output differs from TorchSharp's by {worst:G3}");
            var available = string.Join(", ", OrtEnv.Instance().GetAvailableProviders());
            return fallback is null
                ? $"{provider}, max diff {worst:G2}"
                : $"CPU fallback ({fallback}; providers in this build: {available}), max diff {worst:G2}";
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    private static Trainer NewTrainer(string accelerator, string precision, int epochs, string? root = null) => new(new TrainerOptions
    {
        Accelerator = accelerator, Devices = 1, Precision = precision, MaxEpochs = epochs, EnableProgressBar = false,
        EnableModelSummary = false, EnableCheckpointing = false, Loggers = [],
        DefaultRootDir = root ?? Path.Combine(Path.GetTempPath(), "gpu-check"),
    });

    /// <summary>A learnable regression task: targets from a fixed random linear map of the inputs.</summary>
    private static List<IList<Tensor>> Batches(int count, int seed)
    {
        using var generator = new Generator((ulong)seed);
        var map = randn([Net.Inputs, Net.Outputs], generator: generator);
        return Enumerable.Range(0, count).Select(_ =>
        {
            var x = randn([32, Net.Inputs], generator: generator);
            return (IList<Tensor>)[x, x.matmul(map)];
        }).ToList();
    }

    private static int RunProcess(string file, IEnumerable<string> arguments, TimeSpan limit, out string output)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        Process process;
        try
        {
            process = Process.Start(start)!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            output = e.Message;
            return -1;
        }
        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(limit))
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit();
                output = $"{stdout.Result}{stderr.Result}";
                throw new CheckFailed($"{Path.GetFileName(file)} did not finish within {limit.TotalSeconds:0} s: {Tail(output)}");
            }
            output = stdout.Result + stderr.Result;
            return process.ExitCode;
        }
    }

    private static string Tail(string output) =>
        string.Join(" | ", output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).TakeLast(4));

    /// <summary>The file a shared library named <paramref name="library"/>.so* was loaded from in this process (from /proc/self/maps).</summary>
    private static string LoadedFrom(string library) =>
        File.ReadLines("/proc/self/maps").Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(fields => fields.Length >= 6 && Path.GetFileName(fields[5]).StartsWith(library + ".so", StringComparison.Ordinal))
            .Select(fields => fields[5]).FirstOrDefault() ?? "(not loaded)";

    private static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Select(folder => Path.Combine(folder, name)).FirstOrDefault(File.Exists);

    private sealed class CheckFailed(string message) : Exception(message);
}
