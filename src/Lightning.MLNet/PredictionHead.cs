using Lightning.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.MLNet;

/// <summary>
/// The exported graph: the trained module's forward, then ML.NET's output conventions. Multiclass: <c>Score</c> =
/// softmax of the module's [batch, classes] output and <c>PredictedLabel</c> = argmax + 1 (a one-based key value).
/// Regression: <c>Score</c> = the module's [batch] or [batch, 1] output as [batch].
/// </summary>
internal sealed class PredictionHead : nn.Module, IOnnxExportable
{
    private readonly LightningModule module;
    private readonly int classCount;

    /// <param name="module">The trained module; it must implement <see cref="IOnnxExportable"/>.</param>
    /// <param name="classCount">The number of classes, or 0 for regression.</param>
    public PredictionHead(LightningModule module, int classCount) : base(nameof(PredictionHead))
    {
        this.module = module;
        this.classCount = classCount;
        RegisterComponents();
    }

    public IReadOnlyList<OnnxValue> ExportOnnx(OnnxGraph graph, IReadOnlyList<OnnxValue> inputs)
    {
        var outputs = graph.Call(module, inputs[0]);
        if (outputs.Count != 1)
            throw new InvalidOperationException(
                $"{module.GetType().Name}.ExportOnnx returned {outputs.Count} ONNX values; a Lightning trainer's module returns one (its scores).");
        var scores = outputs[0];
        var shape = scores.Shape;
        if (classCount > 0)
        {
            if (shape.Count != 2 || shape[1] != classCount)
                throw new InvalidOperationException(
                    $"{module.GetType().Name} returns scores of shape [{Format(shape)}]; a multiclass trainer with {classCount} classes expects [batch, {classCount}].");
            var probabilities = graph.Node("Softmax", [scores], new Dictionary<string, object> { ["axis"] = -1L },
                s => nn.functional.softmax(s[0], -1));
            var index = graph.Node("ArgMax", [scores], new Dictionary<string, object> { ["axis"] = 1L, ["keepdims"] = 0L },
                s => s[0].argmax(1));
            return [probabilities, graph.Add(index, graph.Scalar(1, index))];
        }
        if (!(shape.Count == 1 || (shape.Count == 2 && shape[1] == 1)))
            throw new InvalidOperationException(
                $"{module.GetType().Name} returns scores of shape [{Format(shape)}]; a regression trainer expects [batch] or [batch, 1].");
        return [shape.Count == 1 ? scores : graph.Reshape(scores, -1)];
    }

    private static string Format(IReadOnlyList<long?> shape) => string.Join(", ", shape.Select(d => d?.ToString() ?? "batch"));
}
