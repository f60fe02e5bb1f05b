using TorchSharp.Modules;
using static Lightning.Onnx.Converters.LayerConverters;
using static TorchSharp.torch;

namespace Lightning.Onnx.Converters;

/// <summary>CosineSimilarity and PairwiseDistance between two inputs.</summary>
internal static class DistanceConverters
{
    public static void Register(Action<Type, OnnxConverter<nn.Module>> add)
    {
        add(typeof(CosineSimilarity), (m, g, inputs) =>
            [WithSample(g, Cosine((CosineSimilarity)m, g, Two(g, "CosineSimilarity", inputs)), inputs, s => ((CosineSimilarity)m).forward(s[0], s[1]))]);
        add(typeof(PairwiseDistance), (m, g, inputs) =>
            [WithSample(g, Pairwise((PairwiseDistance)m, g, Two(g, "PairwiseDistance", inputs)), inputs, s => ((PairwiseDistance)m).forward(s[0], s[1]))]);
    }

    private static (OnnxValue, OnnxValue) Two(OnnxGraph g, string layer, IReadOnlyList<OnnxValue> inputs) => inputs.Count == 2
        ? (inputs[0], inputs[1])
        : throw new ArgumentException($"{layer} {OnnxGraph.DisplayPath(g.ModulePath)} takes two inputs; it was called with {inputs.Count}.", nameof(inputs));

    private static OnnxValue Cosine(CosineSimilarity cosine, OnnxGraph g, (OnnxValue X1, OnnxValue X2) x)
    {
        // As ATen: each input divided by its norm clamped to eps, then the sum of products.
        long[] axis = [cosine.dim];
        OnnxValue Unit(OnnxValue v) =>
            g.Node("Div", [v, g.Node("Max", [g.Reduce("ReduceL2", v, axis, keepDims: true), g.Scalar(cosine.eps, x.X1.ElementType)])]);
        return g.Reduce("ReduceSum", g.Node("Mul", [Unit(x.X1), Unit(x.X2)]), axis, keepDims: false);
    }

    private static OnnxValue Pairwise(PairwiseDistance pairwise, OnnxGraph g, (OnnxValue X1, OnnxValue X2) x)
    {
        // ‖x1 − x2 + eps‖ₚ over the last axis.
        var type = x.X1.ElementType;
        var difference = g.Node("Add", [g.Node("Sub", [x.X1, x.X2]), g.Scalar(pairwise.eps, type)]);
        long[] last = [-1];
        double p = pairwise.norm;
        if (p == 1) return g.Reduce("ReduceL1", difference, last, pairwise.keepdim);
        if (p == 2) return g.Reduce("ReduceL2", difference, last, pairwise.keepdim);
        if (double.IsPositiveInfinity(p)) return g.Reduce("ReduceMax", g.Node("Abs", [difference]), last, pairwise.keepdim);
        if (p <= 0)
            throw new NotSupportedException(
                $"PairwiseDistance {OnnxGraph.DisplayPath(g.ModulePath)} has p = {p}; the exporter writes p > 0 (including infinity).");
        var powered = g.Node("Pow", [g.Node("Abs", [difference]), g.Scalar(p, type)]);
        return g.Node("Pow", [g.Reduce("ReduceSum", powered, last, pairwise.keepdim), g.Scalar(1 / p, type)]);
    }
}
