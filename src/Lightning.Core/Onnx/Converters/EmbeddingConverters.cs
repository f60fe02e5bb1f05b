using TorchSharp.Modules;
using static Lightning.Onnx.Converters.LayerConverters;
using static TorchSharp.torch;

namespace Lightning.Onnx.Converters;

/// <summary>
/// Embedding and EmbeddingBag as table lookups. padding_idx only changes gradients, so a lookup is the whole forward.
/// max_norm (which TorchSharp keeps inside libtorch) renormalizes rows in place as they are looked up, and a
/// renormalized row stays as it is, so the exported table is every row as a lookup would leave it.
/// </summary>
internal static class EmbeddingConverters
{
    public static void Register(Action<Type, OnnxConverter<nn.Module>> add)
    {
        Add<Embedding>(add, (m, g, x) => Lookup(g, x, "Embedding", Table(m.weight!, all => m.forward(all))));
        add(typeof(EmbeddingBag), (m, g, inputs) => [Bag((EmbeddingBag)m, g, inputs)]);
    }

    private static OnnxValue Lookup(OnnxGraph g, OnnxValue x, string layer, Tensor weight)
    {
        if (x.ElementType is not (ScalarType.Int64 or ScalarType.Int32))
            throw new ArgumentException(
                $"{layer} {OnnxGraph.DisplayPath(g.ModulePath)} takes integer indices; the input is {x.ElementType}.", "inputSample");
        return g.Node("Gather", [g.Initializer(weight, "weight"), x], Attributes(("axis", 0L)));
    }

    /// <summary>
    /// Bags of equal size, as a 2-D input [bags, bag size] (with per-sample weights of the same shape in sum mode).
    /// ONNX has no segment reduction, so offsets into a 1-D input are refused.
    /// </summary>
    private static OnnxValue Bag(EmbeddingBag bag, OnnxGraph g, IReadOnlyList<OnnxValue> inputs)
    {
        var where = $"EmbeddingBag {OnnxGraph.DisplayPath(g.ModulePath)}";
        if (inputs.Count is < 1 or > 3 || inputs[0] is null || inputs.Count >= 2 && inputs[1] is not null)
            throw new NotSupportedException(
                $"{where} is exported for 2-D input [bags, bag size] with no offsets (and optionally per_sample_weights as the third input, " +
                "with null offsets); offsets into a 1-D input need a segment reduction ONNX does not have.");
        var x = inputs[0];
        RequireRank(g, x, "EmbeddingBag", "[bags, bag size]", 2);
        var weights = inputs.Count == 3 ? inputs[2] : null;
        var table = Table(bag.weight!, all => Forward(bag, all.unsqueeze(1), null));
        var rows = Lookup(g, x, "EmbeddingBag", table);
        if (weights is not null) rows = g.Node("Mul", [rows, g.Node("Unsqueeze", [weights, g.Constant(-1)])]);

        // TorchSharp keeps the mode inside libtorch: the one whose reduction matches the layer on the sample is written.
        var sample = Forward(bag, x.Sample!, weights?.Sample);
        var looked = table.index_select(0, x.Sample!.flatten()).reshape(x.Sample!.size(0), x.Sample!.size(1), -1);
        if (weights is not null) looked = looked * weights.Sample!.unsqueeze(-1);
        var modes = new (string Op, Tensor Result)[] { ("ReduceSum", looked.sum(1)), ("ReduceMean", looked.mean([1])), ("ReduceMax", looked.amax(1)) };
        var mode = modes.FirstOrDefault(m => m.Result.allclose(sample, 1e-4, 1e-5)).Op
            ?? throw new NotSupportedException(
                $"{where}: no bag reduction (sum, mean, max) of the looked-up rows reproduces the layer on the sample; a bag holding the padding_index is not exported " +
                "(the reduction would have to leave that index out), nor a max_norm table that differs from one lookup.");
        var present = weights is null ? new[] { x } : [x, weights];
        return WithSample(g, g.Reduce(mode, rows, [1], keepDims: false), present, s => Forward(bag, s[0], s.Count == 2 ? s[1] : null));
    }

    /// <summary>The table after looking up every row once (max_norm's renormalization, if any); the layer's own weight is left as it was.</summary>
    private static Tensor Table(Tensor weight, Func<Tensor, Tensor> lookup)
    {
        using var noGrad = no_grad();
        var saved = weight.detach().clone();
        lookup(arange(weight.size(0), device: weight.device));
        var table = weight.detach().clone();
        weight.copy_(saved);
        return table;
    }

    private static Tensor Forward(EmbeddingBag bag, Tensor x, Tensor? weights) => bag.forward(x, null!, weights!);
}
