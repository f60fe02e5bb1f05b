using System.Diagnostics;
using System.Globalization;
using FashionMnistPipeline;
using Lightning.Callbacks;
using Lightning.Onnx;
using Microsoft.ML.OnnxRuntime;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Benchmarks;

/// <summary>
/// CPU speed of the Fashion-MNIST pipeline sample's CNN: Trainer training steps in three variants (default,
/// MemoryFormat = "channels_last", and "bf16-mixed" with channels-last), alternated in rounds, and its inference forward
/// in TorchSharp (channels-last weights, NNPACK default applied) beside ONNX Runtime at batch 1 and 64.
/// </summary>
internal static class CpuBenchmark
{
    public const string Name = "cpu";

    private const int BatchSize = 128;
    private const int WarmupSteps = 5;
    private const int TimedSteps = 40;

    private static readonly (string Name, string MemoryFormat, string Precision)[] Variants =
    [
        ("default", "contiguous_format", "32-true"),
        ("channels_last", "channels_last", "32-true"),
        ("bf16+cl", "channels_last", "bf16-mixed"),
    ];

    /// <summary>Runs it; <c>--rounds N</c> sets the training rounds (default 5).</summary>
    public static void Run(string[] args)
    {
        int rounds = args is ["--rounds", var r] ? int.Parse(r, CultureInfo.InvariantCulture) : 5;
        LibTorch.ApplyDefaults();
        manual_seed(0);
        // Random images with the sample's shapes: the step time does not depend on the pixel values.
        var batches = Enumerable.Range(0, WarmupSteps + TimedSteps)
            .Select(_ => (IList<Tensor>)[rand(BatchSize, 28 * 28).DetachFromDisposeScope(), randint(0, 10, [BatchSize]).DetachFromDisposeScope()])
            .ToList();
        Console.WriteLine($"FashionCnn (samples/FashionMnistPipeline), batch {BatchSize}, {torch.get_num_threads()} threads: " +
            $"{WarmupSteps} warm-up + {TimedSteps} timed Trainer steps per variant and round, {rounds} rounds, the order rotating each round");

        var ratios = Variants.Skip(1).Select(_ => new List<double>()).ToArray();
        for (int round = 0; round < rounds; round++)
        {
            var times = new double[Variants.Length];
            for (int i = 0; i < Variants.Length; i++)
            {
                var v = (i + round) % Variants.Length;
                times[v] = StepTime(Variants[v].MemoryFormat, Variants[v].Precision, batches);
            }
            for (int v = 1; v < Variants.Length; v++) ratios[v - 1].Add(times[v] / times[0]);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  round {round + 1}: {string.Join("  ", Variants.Select((variant, v) => $"{variant.Name} {times[v]:0.00} ms/step"))}"));
        }
        var (channelsLast, bf16) = (Statistics.Median(ratios[0]), Statistics.Median(ratios[1]));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  medians of the per-round ratios: channels_last/default {channelsLast:0.000}, bf16+cl/default {bf16:0.000}"));

        var forward = CompareForward();
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"cpu: train step channels_last/default = {channelsLast:0.000}; bf16+cl/default = {bf16:0.000}; forward b64 ORT/TorchSharp = {forward:0.000}"));
    }

    /// <summary>The median time of one training step (ms) after the warm-up steps, from the trainer's batch hooks.</summary>
    private static double StepTime(string memoryFormat, string precision, IReadOnlyList<IList<Tensor>> batches)
    {
        manual_seed(1);
        var model = new FashionCnn(maxLr: 3e-3, totalSteps: batches.Count);
        var timer = new BatchTimer();
        var trainer = new Trainer(new TrainerOptions
        {
            MaxEpochs = 1, Precision = precision, MemoryFormat = memoryFormat, Accelerator = "cpu", Loggers = [], Callbacks = [timer],
            EnableCheckpointing = false, EnableProgressBar = false, EnableModelSummary = false, DefaultRootDir = Path.GetTempPath(),
        });
        GC.Collect();
        trainer.Fit(model, batches);
        return Statistics.Median(timer.Milliseconds.Skip(WarmupSteps).ToList());
    }

    /// <summary>ONNX Runtime's median forward time over TorchSharp's at batch 64, after printing batch 1 and 64.</summary>
    private static double CompareForward()
    {
        manual_seed(2);
        var model = new FashionCnn(maxLr: 3e-3, totalSteps: 1);
        // As after training with MemoryFormat = "channels_last": Fabric lays out the weights the same way.
        new Fabric(new FabricOptions { Accelerator = "cpu", MemoryFormat = "channels_last" }).Setup(model);
        model.eval();
        var path = Path.Combine(Path.GetTempPath(), $"lightning-cpu-bench-{Guid.NewGuid():N}.onnx");
        try
        {
            model.ToOnnx(path, rand(2, 28 * 28));
            using var options = new SessionOptions { IntraOpNumThreads = torch.get_num_threads() };
            // Spinning ORT workers would steal the cores from the TorchSharp forward that runs next.
            options.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
            using var session = new InferenceSession(path, options);
            double ratio = 0;
            foreach (var (batch, rounds) in new[] { (1, 1000), (64, 200) })
            {
                var (torchMs, ortMs) = Forward(model, session, batch, rounds);
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"  forward batch {batch,2}: TorchSharp median {torchMs:0.000} ms, ONNX Runtime median {ortMs:0.000} ms over {rounds} alternating rounds; ORT/TorchSharp = {ortMs / torchMs:0.000}"));
                ratio = ortMs / torchMs;
            }
            return ratio;
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static (double TorchMs, double OrtMs) Forward(FashionCnn model, InferenceSession session, int batch, int rounds)
    {
        using var x = rand(batch, 28 * 28);
        return ForwardTiming.Medians(model.forward, session, x, rounds);
    }
}
