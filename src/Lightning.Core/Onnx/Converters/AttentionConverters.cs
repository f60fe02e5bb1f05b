using TorchSharp;
using TorchSharp.Modules;
using static Lightning.Onnx.Converters.LayerConverters;
using static TorchSharp.torch;

namespace Lightning.Onnx.Converters;

/// <summary>
/// MultiheadAttention and TorchSharp's transformer modules (encoder and decoder layers, their stacks, Transformer).
/// They wrap libtorch's C++ modules, so they are sequence-first ([sequence, batch, features]) and post-norm, and their
/// masks come as further inputs: for MultiheadAttention (query, key, value, key_padding_mask, attn_mask), for the
/// others in their forward's order; a null input leaves that mask out. Masks act as in libtorch's C++ attention: a
/// key padding mask blocks where true, an attention mask is added to the scores.
/// </summary>
internal static class AttentionConverters
{
    private const double LayerNormEps = 1e-5;

    public static void Register(Action<Type, OnnxConverter<nn.Module>> add)
    {
        add(typeof(MultiheadAttention), (m, g, inputs) => MultiheadAttention((MultiheadAttention)m, g, inputs));
        add(typeof(TransformerEncoderLayer), (m, g, inputs) => Stack(m, g, inputs, "TransformerEncoderLayer", 3, encoder: ""));
        add(typeof(TransformerEncoder), (m, g, inputs) => Stack(m, g, inputs, "TransformerEncoder", 3, encoder: "layers."));
        add(typeof(TransformerDecoderLayer), (m, g, inputs) => Stack(m, g, inputs, "TransformerDecoderLayer", 6, decoder: ""));
        add(typeof(TransformerDecoder), (m, g, inputs) => Stack(m, g, inputs, "TransformerDecoder", 6, decoder: "layers."));
        add(typeof(Transformer), (m, g, inputs) => Stack(m, g, inputs, "Transformer", 8, encoder: "encoder.layers.", decoder: "decoder.layers."));
    }

    private static IReadOnlyList<OnnxValue> MultiheadAttention(MultiheadAttention mha, OnnxGraph g, IReadOnlyList<OnnxValue> inputs)
    {
        CheckInputs(g, "MultiheadAttention", inputs, 3, 5, "query, key, value and optionally key_padding_mask and attn_mask");
        var p = Parameters(mha);
        var type = p["out_proj.weight"].dtype;
        var settings = HiddenSettings.Of(mha, g, p);
        var (output, weights) = Attend(g, p, "", settings, type, inputs[0], inputs[1], inputs[2], At(inputs, 3), At(inputs, 4));
        SetSamples(g, [output, weights], inputs, s =>
        {
            var (y, w) = mha.forward(s[0]!, s[1]!, s[2]!, s[3], true, s[4]);
            return [y, w];
        });
        return [output, weights];
    }

    /// <summary>
    /// An encoder and/or decoder: <paramref name="encoder"/> and <paramref name="decoder"/> are the parameter prefixes
    /// of their layers ("" for a single layer, "layers." for a stack), null where the module has no such part.
    /// </summary>
    private static IReadOnlyList<OnnxValue> Stack(nn.Module module, OnnxGraph g, IReadOnlyList<OnnxValue> inputs, string name, int maxInputs,
        string? encoder = null, string? decoder = null)
    {
        var what = (encoder, decoder) switch
        {
            (not null, not null) => "src, tgt and optionally src_mask, tgt_mask, memory_mask, src_key_padding_mask, tgt_key_padding_mask, memory_key_padding_mask",
            (not null, null) => "src and optionally src_mask, src_key_padding_mask",
            _ => "tgt, memory and optionally tgt_mask, memory_mask, tgt_key_padding_mask, memory_key_padding_mask",
        };
        CheckInputs(g, name, inputs, encoder is not null && decoder is null ? 1 : 2, maxInputs, what);
        var p = Parameters(module);
        var type = p.Values.First().dtype;
        var settings = HiddenSettings.Of(module, g, p);

        OnnxValue output;
        if (encoder is not null && decoder is not null)
        {
            // Transformer(src, tgt, src_mask, tgt_mask, memory_mask, src_kpm, tgt_kpm, memory_kpm).
            var memory = Encode(g, p, encoder, settings, type, inputs[0], At(inputs, 2), At(inputs, 5));
            output = Decode(g, p, decoder, settings, type, inputs[1], memory, At(inputs, 3), At(inputs, 4), At(inputs, 6), At(inputs, 7));
        }
        else if (encoder is not null)
        {
            output = Encode(g, p, encoder, settings, type, inputs[0], At(inputs, 1), At(inputs, 2));
        }
        else
        {
            output = Decode(g, p, decoder!, settings, type, inputs[0], inputs[1], At(inputs, 2), At(inputs, 3), At(inputs, 4), At(inputs, 5));
        }
        SetSamples(g, [output], inputs, s => [Forward(module, s)]);
        return [output];
    }

    private static OnnxValue Encode(OnnxGraph g, Dictionary<string, Tensor> p, string layers, HiddenSettings s, ScalarType type,
        OnnxValue x, OnnxValue? mask, OnnxValue? keyPaddingMask)
    {
        foreach (var layer in LayerPrefixes(p, layers))
        {
            var (attention, _) = Attend(g, p, layer + "self_attn.", s, type, x, x, x, keyPaddingMask, mask);
            x = Norm(g, p, layer + "norm1.", g.Node("Add", [x, attention]), type);
            x = Norm(g, p, layer + "norm2.", g.Node("Add", [x, FeedForward(g, p, layer, s, type, x)]), type);
        }
        return FinalNorm(g, p, layers, x, type);
    }

    private static OnnxValue Decode(OnnxGraph g, Dictionary<string, Tensor> p, string layers, HiddenSettings s, ScalarType type,
        OnnxValue x, OnnxValue memory, OnnxValue? mask, OnnxValue? memoryMask, OnnxValue? keyPaddingMask, OnnxValue? memoryKeyPaddingMask)
    {
        foreach (var layer in LayerPrefixes(p, layers))
        {
            var (attention, _) = Attend(g, p, layer + "self_attn.", s, type, x, x, x, keyPaddingMask, mask);
            x = Norm(g, p, layer + "norm1.", g.Node("Add", [x, attention]), type);
            var (cross, _) = Attend(g, p, layer + "multihead_attn.", s, type, x, memory, memory, memoryKeyPaddingMask, memoryMask);
            x = Norm(g, p, layer + "norm2.", g.Node("Add", [x, cross]), type);
            x = Norm(g, p, layer + "norm3.", g.Node("Add", [x, FeedForward(g, p, layer, s, type, x)]), type);
        }
        return FinalNorm(g, p, layers, x, type);
    }

    /// <summary>The layer prefixes in order: the single layer itself, or <c>layers.0.</c>, <c>layers.1.</c>, ….</summary>
    private static IEnumerable<string> LayerPrefixes(Dictionary<string, Tensor> p, string layers)
    {
        if (!layers.EndsWith("layers.", StringComparison.Ordinal)) return [layers];
        var count = p.Keys.Where(k => k.StartsWith(layers, StringComparison.Ordinal))
            .Select(k => int.Parse(k.AsSpan(layers.Length, k.IndexOf('.', layers.Length) - layers.Length)))
            .Max() + 1;
        return Enumerable.Range(0, count).Select(i => $"{layers}{i}.");
    }

    /// <summary>A stack's own LayerNorm after its last layer (the one Transformer gives its encoder and decoder), if it has one.</summary>
    private static OnnxValue FinalNorm(OnnxGraph g, Dictionary<string, Tensor> p, string layers, OnnxValue x, ScalarType type)
    {
        var norm = layers.EndsWith("layers.", StringComparison.Ordinal) ? layers[..^"layers.".Length] + "norm." : null;
        return norm is not null && p.ContainsKey(norm + "weight") ? Norm(g, p, norm, x, type) : x;
    }

    private static OnnxValue FeedForward(OnnxGraph g, Dictionary<string, Tensor> p, string layer, HiddenSettings s, ScalarType type, OnnxValue x)
    {
        var hidden = Project(g, p, x, p[layer + "linear1.weight"], p.GetValueOrDefault(layer + "linear1.bias"), layer + "linear1");
        hidden = s.Gelu ? ActivationConverters.Gelu(g, hidden, tanh: false, type) : g.Node("Relu", [hidden]);
        return Project(g, p, hidden, p[layer + "linear2.weight"], p.GetValueOrDefault(layer + "linear2.bias"), layer + "linear2");
    }

    private static OnnxValue Norm(OnnxGraph g, Dictionary<string, Tensor> p, string norm, OnnxValue x, ScalarType type) =>
        LayerNormalization(g, x, g.Initializer(p[norm + "weight"], norm + "weight"),
            p.TryGetValue(norm + "bias", out var bias) ? g.Initializer(bias, norm + "bias") : null, 1, LayerNormEps, type);

    /// <summary><c>x · weightᵀ + bias</c> for any rank.</summary>
    private static OnnxValue Project(OnnxGraph g, Dictionary<string, Tensor> p, OnnxValue x, Tensor weight, Tensor? bias, string name)
    {
        var y = g.Node("MatMul", [x, g.Initializer(weight.t().contiguous(), name + ".weight_t")]);
        return bias is null ? y : g.Node("Add", [y, g.Initializer(bias, name + ".bias")]);
    }

    /// <summary>
    /// Multi-head attention as libtorch computes it, for query [L, N, E] and key/value [S, N, ·]: the output [L, N, E]
    /// and the attention weights averaged over the heads [N, L, S].
    /// </summary>
    private static (OnnxValue Output, OnnxValue Weights) Attend(OnnxGraph g, Dictionary<string, Tensor> p, string prefix, HiddenSettings s,
        ScalarType type, OnnxValue query, OnnxValue key, OnnxValue value, OnnxValue? keyPaddingMask, OnnxValue? attentionMask)
    {
        // Values made inside a converter carry no shape; the inputs of the exported module do.
        foreach (var (input, role) in new[] { (query, "query"), (key, "key"), (value, "value") })
            if (input.HasShape) RequireRank(g, input, $"MultiheadAttention {role}", "[sequence, batch, features]", 3);
        var outWeight = p[prefix + "out_proj.weight"];
        long embed = outWeight.size(0), heads = s.Heads, headDim = embed / heads;
        double scale = 1 / Math.Sqrt(headDim);
        Tensor InWeight(int i, string separate) => p.TryGetValue(prefix + separate, out var w) ? w : p[prefix + "in_proj_weight"].chunk(3, 0)[i];
        Tensor? InBias(int i) => p.TryGetValue(prefix + "in_proj_bias", out var b) ? b.chunk(3, 0)[i] : null;

        // libtorch scales the projected query by 1/√head_dim; folding it into the weights saves a node.
        var q = Project(g, p, query, InWeight(0, "q_proj_weight") * scale, InBias(0) is { } qb ? qb * scale : null, prefix + "q_proj");
        var k = Project(g, p, key, InWeight(1, "k_proj_weight"), InBias(1), prefix + "k_proj");
        var v = Project(g, p, value, InWeight(2, "v_proj_weight"), InBias(2), prefix + "v_proj");

        // Masks become additive: -inf where a boolean mask is true. The key padding mask [N, S] goes to [N·H, 1, S].
        var additive = attentionMask is null ? null : Additive(g, attentionMask, type, "attn_mask");
        var padding = keyPaddingMask is null ? null : Additive(g, keyPaddingMask, type, "key_padding_mask");
        if (padding is not null)
        {
            var perHead = g.Node("Expand", [g.Node("Unsqueeze", [padding, g.Constant(1, 2)]), g.Constant(1, heads, 1, 1)]);
            padding = g.Node("Unsqueeze", [g.Node("Flatten", [perHead], Attributes(("axis", 2L))), g.Constant(1)]);
        }

        if (p.TryGetValue(prefix + "bias_k", out var biasK))
        {
            // add_bias_kv: one more key and value position, the learned biases, for every batch entry.
            var batch = g.Node("Gather", [g.Node("Shape", [k]), g.Constant(1)], Attributes(("axis", 0L)));
            var shape = g.Node("Concat", [g.Constant(1), batch, g.Constant(embed)], Attributes(("axis", 0L)));
            k = g.Node("Concat", [k, g.Node("Expand", [g.Initializer(biasK, prefix + "bias_k"), shape])], Attributes(("axis", 0L)));
            v = g.Node("Concat", [v, g.Node("Expand", [g.Initializer(p[prefix + "bias_v"], prefix + "bias_v"), shape])], Attributes(("axis", 0L)));
            additive = additive is null ? null : PadLast(g, additive, type);
            padding = padding is null ? null : PadLast(g, padding, type);
        }

        // Heads: [L, N, E] → [L, N·H, d] → [N·H, L, d] (keys transposed to [N·H, d, S] for the product).
        q = g.Node("Transpose", [g.Node("Reshape", [q, g.Constant(0, -1, headDim)])], Attributes(("perm", new long[] { 1, 0, 2 })));
        k = g.Node("Transpose", [g.Node("Reshape", [k, g.Constant(0, -1, headDim)])], Attributes(("perm", new long[] { 1, 2, 0 })));
        v = g.Node("Transpose", [g.Node("Reshape", [v, g.Constant(0, -1, headDim)])], Attributes(("perm", new long[] { 1, 0, 2 })));
        if (s.ZeroAttention)
        {
            // add_zero_attn: one more all-zero key and value position.
            k = g.Node("Concat", [k, g.Node("Mul", [g.Node("Slice", [k, g.Constant(0), g.Constant(1), g.Constant(2)]), g.Scalar(0, type)])], Attributes(("axis", 2L)));
            v = g.Node("Concat", [v, g.Node("Mul", [g.Node("Slice", [v, g.Constant(0), g.Constant(1), g.Constant(1)]), g.Scalar(0, type)])], Attributes(("axis", 1L)));
            additive = additive is null ? null : PadLast(g, additive, type);
            padding = padding is null ? null : PadLast(g, padding, type);
        }

        var scores = g.Node("MatMul", [q, k]);
        if (additive is not null) scores = g.Node("Add", [scores, additive]);
        if (padding is not null) scores = g.Node("Add", [scores, padding]);
        var weights = g.Node("Softmax", [scores], Attributes(("axis", -1L)));

        var heads3 = g.Node("MatMul", [weights, v]);
        var merged = g.Node("Reshape", [g.Node("Transpose", [heads3], Attributes(("perm", new long[] { 1, 0, 2 }))), g.Constant(0, -1, embed)]);
        var output = Project(g, p, merged, outWeight, p.GetValueOrDefault(prefix + "out_proj.bias"), prefix + "out_proj");

        // need_weights: [N·H, L, S] → [N, H, L, S] → mean over the heads.
        var lengths = g.Node("Slice", [g.Node("Shape", [weights]), g.Constant(1), g.Constant(3), g.Constant(0)]);
        var split = g.Node("Reshape", [weights, g.Node("Concat", [g.Constant(-1, heads), lengths], Attributes(("axis", 0L)))]);
        return (output, g.Reduce("ReduceMean", split, [1], keepDims: false));
    }

    /// <summary>
    /// The mask as a term added to the scores. libtorch's C++ attention, which TorchSharp runs, adds attn_mask as it is
    /// (so a boolean one adds 1 where true, unlike Python's -inf) and fills -inf where key_padding_mask is true.
    /// </summary>
    private static OnnxValue Additive(OnnxGraph g, OnnxValue mask, ScalarType type, string name)
    {
        var where = $"MultiheadAttention {OnnxGraph.DisplayPath(g.ModulePath)}";
        if (name == "attn_mask")
        {
            if (mask.Rank != 2)
                throw new ArgumentException(
                    $"{where}: attn_mask has shape {mask.ShapeText}; TorchSharp's attention takes a 2-D [target, source] mask.", "inputSample");
            if (mask.ElementType == type) return mask;
            if (mask.ElementType == ScalarType.Bool) return g.Node("Cast", [mask], Attributes(("to", (long)OnnxGraph.ElementTypeOf(type, name))));
            throw new ArgumentException($"{where}: attn_mask is {mask.ElementType}; it must be {type} (added to the scores) or Bool.", "inputSample");
        }
        if (mask.ElementType != ScalarType.Bool)
            throw new ArgumentException($"{where}: key_padding_mask is {mask.ElementType}; it must be Bool (true marks padding).", "inputSample");
        return g.Node("Where", [mask, g.Scalar(double.NegativeInfinity, type), g.Scalar(0, type)]);
    }

    /// <summary>One more key position, not masked: a zero column at the end of the last axis.</summary>
    private static OnnxValue PadLast(OnnxGraph g, OnnxValue mask, ScalarType type)
    {
        var zero = g.Node("Mul", [g.Node("Slice", [mask, g.Constant(0), g.Constant(1), g.Constant(-1)]), g.Scalar(0, type)]);
        return g.Node("Concat", [mask, zero], Attributes(("axis", -1L)));
    }

    private static Dictionary<string, Tensor> Parameters(nn.Module module) =>
        module.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter.detach());

    private static OnnxValue? At(IReadOnlyList<OnnxValue> inputs, int i) => i < inputs.Count ? inputs[i] : null;

    private static void CheckInputs(OnnxGraph g, string type, IReadOnlyList<OnnxValue> inputs, int required, int max, string what)
    {
        if (inputs.Count < required || inputs.Count > max || inputs.Take(required).Any(i => i is null))
            throw new ArgumentException(
                $"{type} {OnnxGraph.DisplayPath(g.ModulePath)} takes {what} (null for a mask left out); it was called with {inputs.Count} inputs.", nameof(inputs));
    }

    private static void SetSamples(OnnxGraph g, OnnxValue[] outputs, IReadOnlyList<OnnxValue> inputs, Func<Tensor?[], Tensor[]> forward)
    {
        var present = inputs.Select((value, index) => (value, index)).Where(i => i.value is not null).ToArray();
        var (samples, probes) = g.Evaluate(s =>
        {
            var all = new Tensor?[8];
            for (int j = 0; j < present.Length; j++) all[present[j].index] = s[j];
            return forward(all);
        }, [.. present.Select(i => i.value)], outputs.Length);
        for (int i = 0; i < outputs.Length; i++) outputs[i].SetSamples(samples[i], probes[i]);
    }

    private static Tensor Forward(nn.Module module, Tensor?[] s) => module switch
    {
        TransformerEncoderLayer layer => layer.call(s[0]!, s[1]!, s[2]!),
        TransformerEncoder encoder => encoder.forward(s[0]!, s[1]!, s[2]!),
        TransformerDecoderLayer layer => layer.forward(s[0]!, s[1]!, s[2]!, s[3]!, s[4]!, s[5]!),
        TransformerDecoder decoder => decoder.forward(s[0]!, s[1]!, s[2]!, s[3]!, s[4]!, s[5]!),
        Transformer transformer => transformer.call(s[0]!, s[1]!, s[2]!, s[3]!, s[4]!, s[5]!, s[6]!, s[7]!),
        _ => throw new InvalidOperationException($"No forward for {module.GetType().Name}."),
    };
}
