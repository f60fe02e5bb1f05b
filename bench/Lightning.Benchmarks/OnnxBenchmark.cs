using System.Diagnostics;
using System.Globalization;
using Lightning.Onnx;
using Microsoft.ML.OnnxRuntime;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Benchmarks;

/// <summary>
/// Inference latency of the exported Fashion-MNIST CNN in ONNX Runtime (CPU) against TorchSharp's eval-mode forward:
/// both warmed up, then measured alternately (the order flips each round) on the same input, and compared by median.
/// </summary>
internal static class OnnxBenchmark
{
    public const string Name = "onnx";

    /// <summary>Runs the comparison; <c>--threads N</c> sets both libraries' intra-op threads (default: one per core).</summary>
    public static void Run(string[] args)
    {
        int threads = args is ["--threads", var n] ? int.Parse(n, CultureInfo.InvariantCulture) : Environment.ProcessorCount;
        torch.set_num_threads(threads);
        manual_seed(0);
        var cnn = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding: 1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding: 1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.25), nn.Linear(32 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.5), nn.Linear(128, 10));
        cnn.eval();
        var path = Path.Combine(Path.GetTempPath(), $"lightning-onnx-bench-{Guid.NewGuid():N}.onnx");
        try
        {
            cnn.ToOnnx(path, rand(2, 1, 28, 28));
            using var options = new SessionOptions { IntraOpNumThreads = threads };
            // Spinning ORT workers would steal the cores from the TorchSharp forward that runs next.
            options.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
            using var session = new InferenceSession(path, options);
            Console.WriteLine($"Fashion-MNIST CNN (2 conv + BatchNorm blocks, 2 linear), {threads} thread(s) each");
            var ratios = new[] { (Batch: 1, Rounds: 1000), (Batch: 64, Rounds: 100) }
                .Select(c => (c.Batch, Ratio: Compare(cnn, session, c.Batch, c.Rounds))).ToList();
            Console.WriteLine(string.Join("; ", ratios.Select(r => string.Create(CultureInfo.InvariantCulture,
                $"onnx: batch {r.Batch}: ORT/TorchSharp = {r.Ratio:0.000}"))));
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static double Compare(nn.Module<Tensor, Tensor> cnn, InferenceSession session, int batch, int rounds)
    {
        using var x = rand(batch, 1, 28, 28);
        var (torchMedian, ortMedian) = ForwardTiming.Medians(cnn.forward, session, x, rounds);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  batch {batch,2}: TorchSharp median {torchMedian:0.000} ms, ONNX Runtime median {ortMedian:0.000} ms over {rounds} alternating rounds; ORT/TorchSharp = {ortMedian / torchMedian:0.000}"));
        return ortMedian / torchMedian;
    }

}
