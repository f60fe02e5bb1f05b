using System.Text.Json;
using System.Text.Json.Nodes;
using Lightning.Onnx;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.ML.OnnxRuntime;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Serving.Tests.Inference;

/// <summary>Tiny ONNX models exported with Lightning's exporter, and reference runs straight on ONNX Runtime.</summary>
internal static class OnnxTestModels
{
    private static readonly object TorchLock = new();

    /// <summary><c>Linear(4, 3) → ReLU</c>, input <c>input</c> [batch, 4] FP32, output <c>output</c> [batch, 3].</summary>
    public static string Linear(string path, int seed = 1)
    {
        lock (TorchLock)
        {
            torch.manual_seed(seed);
            using var module = nn.Sequential(("fc", nn.Linear(4, 3)), ("relu", nn.ReLU()));
            using var sample = torch.randn(2, 4);
            module.ToOnnx(path, sample);
        }
        return path;
    }

    /// <summary><c>Embedding(10, 3)</c>, input <c>input</c> [batch, 5] INT64, output <c>output</c> [batch, 5, 3].</summary>
    public static string Embedding(string path)
    {
        lock (TorchLock)
        {
            torch.manual_seed(3);
            using var module = nn.Sequential(("emb", nn.Embedding(10, 3)));
            using var sample = torch.randint(0, 10, [2, 5], dtype: ScalarType.Int64);
            module.ToOnnx(path, sample);
        }
        return path;
    }

    /// <summary>Runs the model on one FP32 input on ONNX Runtime directly.</summary>
    public static float[] Reference(string path, float[] data, long[] shape) => Run(path, data, shape);

    /// <summary>Runs the model on one INT64 input (ids) on ONNX Runtime directly; the output is FP32.</summary>
    public static float[] ReferenceInt64(string path, long[] data, long[] shape) => Run(path, data, shape);

    // Not a public generic: a collection expression such as [1, 2, 3, 4] would then infer int instead of float.
    private static float[] Run<T>(string path, T[] data, long[] shape) where T : unmanaged
    {
        using var session = new InferenceSession(path);
        using var input = OrtValue.CreateTensorValueFromMemory(data, shape);
        using var outputs = session.Run(new RunOptions(), [session.InputNames[0]], [input], session.OutputNames);
        return outputs.First().GetTensorDataAsSpan<float>().ToArray();
    }

    public static string InferBody(float[] data, long rows, string? id = null) =>
        JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["id"] = id,
            ["inputs"] = new[] { new { name = "input", shape = new[] { rows, 4L }, datatype = "FP32", data } },
        });

    public static float[] Floats(JsonNode? node) => [.. node!.AsArray().Select(v => v!.GetValue<float>())];
}
