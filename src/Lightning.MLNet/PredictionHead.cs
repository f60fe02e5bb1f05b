using Lightning.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.MLNet;

/// <summary>What the exported graph returns after the module's forward.</summary>
internal enum HeadKind
{
    /// <summary><c>Score</c> = softmax of the [batch, K] scores and <c>PredictedLabel</c> = argmax + 1, a one-based key value.</summary>
    Multiclass,
    /// <summary><c>Score</c> = the module's [batch] or [batch, 1] output.</summary>
    Regression,
    /// <summary>
    /// <c>Score</c> = the module's [batch] or [batch, 1] logit, <c>Probability</c> = its sigmoid and <c>PredictedLabel</c> =
    /// logit &gt; 0 (Boolean).
    /// </summary>
    Binary,
    /// <summary>One column: the module's output, each row's values flattened.</summary>
    Vector,
}

/// <summary>
/// The exported graph: the module's forward, then ML.NET's output conventions. Two forms of the same graph:
/// <list type="bullet">
/// <item>per row (<c>batched: false</c>), for OnnxTransformer and the saved model: each input [F] as a batch of one, outputs
/// of one row (multiclass <c>Score</c> [K], <c>PredictedLabel</c> [1]; regression <c>Score</c> [1]; binary <c>Score</c>,
/// <c>Probability</c>, <c>PredictedLabel</c> [1] each; vector [D]). ML.NET
/// then sees Vector&lt;Single, K&gt; rather than the Vector&lt;Single, 1, K&gt; (or an unknown size) that a batch axis gives.
/// Rank-0 outputs would give scalar columns, but OnnxTransformer's getter fails on them at run time; <see cref="ScalarOutputs"/>
/// turns the one-slot vectors into scalars after it.</item>
/// <item>batched (<c>batched: true</c>), for <see cref="BatchScorer"/>: each input [N, F], outputs [N, …] of the same values.</item>
/// </list>
/// </summary>
internal sealed class PredictionHead : nn.Module, IOnnxExportable
{
    private readonly nn.Module module;
    private readonly HeadKind kind;
    private readonly int classCount;
    private readonly bool batched;
    private readonly InputColumn[] inputColumns;

    /// <param name="module">The module; it is a TorchSharp layer the exporter knows or implements <see cref="IOnnxExportable"/>.</param>
    /// <param name="kind">The outputs after the forward.</param>
    /// <param name="classCount">The number of classes (multiclass), else 0.</param>
    /// <param name="inputs">The input columns; the per-row graph takes a key column as its indicators and passes the ids k - 1 on.</param>
    /// <param name="batched">True: the graph takes each input as [N, F] (key columns as the ids k - 1 already); false: one row [F].</param>
    public PredictionHead(nn.Module module, HeadKind kind, int classCount, IReadOnlyList<InputColumn> inputs, bool batched) : base(nameof(PredictionHead))
    {
        inputColumns = [.. inputs];
        this.module = module;
        this.kind = kind;
        this.classCount = classCount;
        this.batched = batched;
        RegisterComponents();
    }

    public IReadOnlyList<OnnxValue> ExportOnnx(OnnxGraph graph, IReadOnlyList<OnnxValue> inputs)
    {
        var outputs = graph.Call(module, [.. batched ? inputs : inputColumns.SelectMany((column, i) => RowArguments(graph, inputs[i], column))]);
        if (outputs.Count != 1)
            throw new InvalidOperationException(
                $"{module.GetType().Name}'s ONNX export returns {outputs.Count} values; a Lightning trainer or transform takes a module with one output.");
        var scores = outputs[0];
        var shape = scores.Shape;
        switch (kind)
        {
            case HeadKind.Multiclass:
                if (shape.Count != 2 || shape[1] != classCount)
                    throw new InvalidOperationException(
                        $"{module.GetType().Name} returns scores of shape [{Format(shape)}]; a multiclass trainer with {classCount} classes expects [batch, {classCount}].");
                var probabilities = graph.Node("Softmax", [scores], new Dictionary<string, object> { ["axis"] = -1L },
                    s => nn.functional.softmax(s[0], -1));
                var index = graph.Node("ArgMax", [scores], new Dictionary<string, object> { ["axis"] = 1L, ["keepdims"] = 1L },
                    s => s[0].argmax(1, keepdim: true));
                var label = graph.Add(index, graph.Scalar(1, index));
                return batched ? [probabilities, label] : [graph.Reshape(probabilities, classCount), graph.Reshape(label, 1)];
            case HeadKind.Regression:
                if (!(shape.Count == 1 || (shape.Count == 2 && shape[1] == 1)))
                    throw new InvalidOperationException(
                        $"{module.GetType().Name} returns scores of shape [{Format(shape)}]; a regression trainer expects [batch] or [batch, 1].");
                return [batched ? graph.Reshape(scores, -1, 1) : graph.Reshape(scores, 1)];
            case HeadKind.Binary:
                if (!(shape.Count == 1 || (shape.Count == 2 && shape[1] == 1)))
                    throw new InvalidOperationException(
                        $"{module.GetType().Name} returns scores of shape [{Format(shape)}]; a binary classification trainer expects one logit per row, [batch] or [batch, 1].");
                var logit = batched ? graph.Reshape(scores, -1, 1) : graph.Reshape(scores, 1);
                var probability = graph.Node("Sigmoid", [logit], evaluate: s => s[0].sigmoid());
                var positive = graph.Node("Greater", [logit, graph.Scalar(0, logit)], evaluate: s => s[0] > s[1]);
                return [logit, probability, positive];
            default:
                if (scores.ElementType != ScalarType.Float32)
                    throw new InvalidOperationException(
                        $"{module.GetType().Name} returns {scores.ElementType} values; a Lightning transform makes a vector of Single, so the module must return float32.");
                if (shape.Count < 1)
                    throw new InvalidOperationException(
                        $"{module.GetType().Name} returns a scalar; a Lightning transform expects an output of shape [batch, …].");
                return [batched ? graph.Reshape(scores, 0, -1) : graph.Reshape(scores, -1)];
        }
    }

    /// <summary>
    /// One row's forward arguments for a column, as a batch of one: the values [1, F] (a key column's ids), and for a
    /// variable-length column the mask of ones [1, len], both padded with zeros to MaxLength when it is set.
    /// </summary>
    private static IEnumerable<OnnxValue> RowArguments(OnnxGraph graph, OnnxValue input, InputColumn column)
    {
        var values = column.IsImage ? graph.Reshape(input, [1, .. column.RowShape])
            : graph.Reshape(column.IsKey ? KeyIds(graph, input, column) : input, 1, -1);
        if (!column.Variable) return [values];
        var shape = graph.Node("Shape", [values], evaluate: s => tensor(s[0].shape, ScalarType.Int64));
        var mask = graph.Node("Expand", [graph.Constant(1), shape], evaluate: s => s[0].expand(s[1].data<long>().ToArray()).contiguous());
        if (column.MaxLength is not { } maxLength) return [values, mask];
        // Pads [0, 0, 0, MaxLength - len]: nothing before either axis, the rest of MaxLength after the length axis.
        var pads = graph.Concat(0, graph.Constant(0, 0, 0), graph.Sub(graph.Constant(maxLength), graph.Size(values, 1)));
        return [Pad(graph, values, pads), Pad(graph, mask, pads)];
    }

    private static OnnxValue Pad(OnnxGraph graph, OnnxValue x, OnnxValue pads) =>
        graph.Node("Pad", [x, pads], evaluate: s => nn.functional.pad(s[0], [0, s[1][3].item<long>()]));

    /// <summary>
    /// A key column's ids from its indicators [F × K] (one 1 per slot, at key k): the ids k - 1, int64 [F]. A missing key
    /// (no 1 in its slot) gets K, out of any embedding's range, so ONNX Runtime fails rather than score it as id 0.
    /// </summary>
    private static OnnxValue KeyIds(OnnxGraph graph, OnnxValue indicators, InputColumn column)
    {
        long keyCount = (long)column.KeyCount;
        var keyValues = graph.Initializer(arange(1, keyCount + 1, ScalarType.Float32), "key_values");
        var key = graph.Cast(graph.MatMul(graph.Reshape(indicators, column.Width, keyCount), keyValues), ScalarType.Int64);
        var missing = graph.Node("Equal", [key, graph.Scalar(0, key)], evaluate: s => s[0].eq(s[1]));
        return graph.Where(missing, graph.Scalar(keyCount, key), graph.Sub(key, graph.Scalar(1, key)));
    }

    private static string Format(IReadOnlyList<long?> shape) => string.Join(", ", shape.Select(d => d?.ToString() ?? "batch"));
}
