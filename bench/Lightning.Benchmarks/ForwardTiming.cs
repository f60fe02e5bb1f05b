using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;
using static TorchSharp.torch;

namespace Lightning.Benchmarks;

/// <summary>
/// One input through a TorchSharp forward and through an ONNX Runtime session: warm-up calls, then
/// <c>rounds</c> alternating calls whose order flips each round, so neither side always runs on the other's warm caches.
/// </summary>
internal static class ForwardTiming
{
    /// <summary>The median milliseconds of each side.</summary>
    public static (double TorchMs, double OrtMs) Medians(Func<Tensor, Tensor> forward, InferenceSession session, Tensor x, int rounds)
    {
        using var input = OrtValue.CreateTensorValueFromMemory(x.data<float>().ToArray(), x.shape);
        using var runOptions = new RunOptions();
        double TorchSharp()
        {
            var clock = Stopwatch.StartNew();
            using (NewDisposeScope())
            using (no_grad())
                forward(x).data<float>();
            return clock.Elapsed.TotalMilliseconds;
        }
        double OnnxRuntime()
        {
            var clock = Stopwatch.StartNew();
            using (var outputs = session.Run(runOptions, session.InputNames, [input], session.OutputNames))
                outputs[0].GetTensorDataAsSpan<float>();
            return clock.Elapsed.TotalMilliseconds;
        }

        for (int i = 0; i < Math.Max(10, rounds / 10); i++)
        {
            TorchSharp();
            OnnxRuntime();
        }
        var torchTimes = new List<double>(rounds);
        var ortTimes = new List<double>(rounds);
        for (int i = 0; i < rounds; i++)
        {
            if (i % 2 == 0)
            {
                torchTimes.Add(TorchSharp());
                ortTimes.Add(OnnxRuntime());
            }
            else
            {
                ortTimes.Add(OnnxRuntime());
                torchTimes.Add(TorchSharp());
            }
        }
        return (Statistics.Median(torchTimes), Statistics.Median(ortTimes));
    }
}
