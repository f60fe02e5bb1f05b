using Lightning.Onnx;
using Lightning.Testing;
using Microsoft.ML.OnnxRuntime;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Onnx;

/// <summary>
/// PyTorch's ONNX verification, as in its ORT test harness: export on one sample, then run the same ONNX Runtime
/// session on fresh random inputs at two other batch sizes and compare every output with the eval-mode forward.
/// </summary>
internal static class OnnxParity
{
    public const double RelativeTolerance = 1e-4;
    public const double AbsoluteTolerance = 1e-5;

    /// <summary>Exports a single-input module and checks it at batch sizes 1 and 5 (the export sample has batch 2).</summary>
    public static void AssertMatches(nn.Module<Tensor, Tensor> module, Func<long, Tensor> input, OnnxExportOptions? options = null) =>
        AssertMatches(module, b => [input(b)], s => [module.forward(s[0])], options);

    /// <summary>Exports <paramref name="module"/> on <c>inputs(2)</c> and compares ONNX Runtime with <paramref name="forward"/> at batch sizes 1 and 5.</summary>
    public static void AssertMatches(nn.Module module, Func<long, Tensor[]> inputs, Func<Tensor[], Tensor[]> forward,
        OnnxExportOptions? options = null) =>
        AssertMatches(module, (batch, _) => inputs(batch), forward, options);

    /// <summary>
    /// Exports <paramref name="module"/> on <c>inputs(batch 2, sequence 3)</c>, checks the file with the ONNX checker
    /// and compares ONNX Runtime with <paramref name="forward"/> at (batch 1, sequence 5) and (batch 5, sequence 2).
    /// </summary>
    public static void AssertMatches(nn.Module module, Func<long, long, Tensor[]> inputs, Func<Tensor[], Tensor[]> forward,
        OnnxExportOptions? options = null)
    {
        using var directory = new TempDirectory();
        var path = directory.Combine("model.onnx");
        using (NewDisposeScope())
            module.ToOnnx(path, inputs(2, 3), options);
        OnnxChecker.AssertValid(path);

        using var session = new InferenceSession(path);
        foreach (var (batch, sequence) in new (long, long)[] { (1, 5), (5, 2) })
        {
            // No no_grad() here: under it, TorchSharp 0.107's CPU LSTM takes libtorch's oneDNN inference path, whose
            // results differ from the LSTM formula; the grad-enabled path agrees with the formula and with ONNX Runtime.
            using var scope = NewDisposeScope();
            module.eval();
            var x = inputs(batch, sequence);
            var expected = forward(x);
            var actual = Run(session, x);
            Assert.Equal(expected.Length, actual.Count);
            for (int i = 0; i < expected.Length; i++)
                AssertClose(expected[i], actual[i], $"output {i} at batch {batch}, sequence {sequence}");
        }
    }

    /// <summary>Runs the session on tensors given in the order of its inputs and returns its outputs in order.</summary>
    public static IReadOnlyList<(long[] Shape, float[] Data)> Run(InferenceSession session, IReadOnlyList<Tensor> inputs)
    {
        var values = inputs.Select(ToOrtValue).ToList();
        try
        {
            using var options = new RunOptions();
            using var outputs = session.Run(options, session.InputNames, values, session.OutputNames);
            return [.. outputs.Select(o => (o.GetTensorTypeAndShape().Shape, o.GetTensorDataAsSpan<float>().ToArray()))];
        }
        finally
        {
            foreach (var value in values) value.Dispose();
        }
    }

    public static void AssertClose(Tensor expected, (long[] Shape, float[] Data) actual, string what)
    {
        Assert.Equal(expected.shape, actual.Shape);
        // NaN on one side only (a fully masked row in one runtime, say) is the worst mismatch; NaN on both agrees.
        Approx.AssertClose(expected.contiguous().data<float>().ToArray(), actual.Data, RelativeTolerance, AbsoluteTolerance,
            $"{what} (ONNX Runtime against TorchSharp)");
    }

    private static OrtValue ToOrtValue(Tensor tensor)
    {
        var data = tensor.contiguous();
        return data.dtype switch
        {
            ScalarType.Float32 => OrtValue.CreateTensorValueFromMemory(data.data<float>().ToArray(), data.shape),
            ScalarType.Int64 => OrtValue.CreateTensorValueFromMemory(data.data<long>().ToArray(), data.shape),
            ScalarType.Bool => OrtValue.CreateTensorValueFromMemory(data.data<bool>().ToArray(), data.shape),
            _ => throw new NotSupportedException($"Test inputs of type {data.dtype} are not wired up."),
        };
    }
}
