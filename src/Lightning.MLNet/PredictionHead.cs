using Lightning.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.MLNet;

/// <summary>
/// The exported graph, for one row: features [F] as a batch of one, the trained module's forward, then ML.NET's output
/// conventions. Multiclass: <c>Score</c> [K] = softmax of the module's [1, K] output and <c>PredictedLabel</c> [1] =
/// argmax + 1, a one-based key value. Regression: <c>Score</c> [1] = the module's [1] or [1, 1] output. (Rank-0
/// outputs would give ML.NET scalar columns, but OnnxTransformer's getter fails on them at run time.)
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
        // ML.NET's OnnxTransformer runs one row at a time: the graph takes one feature vector [F] and returns one row's
        // outputs, so that ML.NET sees Score as Vector<Single, K> rather than Vector<Single, 1, K>.
        var outputs = graph.Call(module, graph.Reshape(inputs[0], 1, -1));
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
            var row = graph.Reshape(scores, classCount);
            var probabilities = graph.Node("Softmax", [row], new Dictionary<string, object> { ["axis"] = -1L },
                s => nn.functional.softmax(s[0], -1));
            var index = graph.Node("ArgMax", [row], new Dictionary<string, object> { ["axis"] = 0L, ["keepdims"] = 1L },
                s => s[0].argmax(0, keepdim: true));
            return [probabilities, graph.Add(index, graph.Scalar(1, index))];
        }
        if (!(shape.Count == 1 || (shape.Count == 2 && shape[1] == 1)))
            throw new InvalidOperationException(
                $"{module.GetType().Name} returns scores of shape [{Format(shape)}]; a regression trainer expects [batch] or [batch, 1].");
        return [graph.Reshape(scores, 1)];
    }

    private static string Format(IReadOnlyList<long?> shape) => string.Join(", ", shape.Select(d => d?.ToString() ?? "batch"));
}
