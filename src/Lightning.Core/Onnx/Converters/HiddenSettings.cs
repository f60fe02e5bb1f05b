using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lightning.Onnx.Converters;

/// <summary>
/// The settings of TorchSharp's attention and transformer modules that the parameters do not show: the number of heads,
/// the feed-forward activation and add_zero_attn. TorchSharp 0.107 keeps them inside libtorch's C++ module with no
/// getter, so they are identified: each possible setting is built as a fresh module with the same parameters, and the
/// one whose forward matches the module's own on a fixed random input is taken.
/// </summary>
internal sealed record HiddenSettings(long Heads, bool Gelu, bool ZeroAttention)
{
    public static HiddenSettings Of(nn.Module module, OnnxGraph g, IReadOnlyDictionary<string, Tensor> p)
    {
        var first = p.Values.First();
        var (type, device) = (first.dtype, first.device);
        var generator = new Generator(17, device);
        Tensor Random(params long[] shape) => randn(shape, type, device, generator: generator);

        long model, feedForward = 0;
        if (module is MultiheadAttention)
        {
            model = p["out_proj.weight"].size(0);
        }
        else
        {
            var linear1 = p.First(e => e.Key.EndsWith("linear1.weight", StringComparison.Ordinal)).Value;
            (model, feedForward) = (linear1.size(1), linear1.size(0));
        }
        int Layers(string prefix) => p.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal))
            .Select(k => int.Parse(k.AsSpan(prefix.Length, k.IndexOf('.', prefix.Length) - prefix.Length))).DefaultIfEmpty(-1).Max() + 1;
        var activations = new[] { (false, nn.Activations.ReLU), (true, nn.Activations.GELU) };
        var heads = Enumerable.Range(1, (int)model).Where(h => model % h == 0).Select(h => (long)h).ToArray();

        IEnumerable<(HiddenSettings, Func<nn.Module>)> candidates;
        Func<nn.Module, Tensor> run;
        switch (module)
        {
            case MultiheadAttention:
                long kdim = p.TryGetValue("k_proj_weight", out var kw) ? kw.size(1) : model;
                long vdim = p.TryGetValue("v_proj_weight", out var vw) ? vw.size(1) : model;
                bool bias = p.ContainsKey("in_proj_bias"), biasKv = p.ContainsKey("bias_k");
                candidates = from h in heads
                             from zero in new[] { false, true }
                             select (new HiddenSettings(h, false, zero),
                                 (Func<nn.Module>)(() => nn.MultiheadAttention(model, h, 0, bias, biasKv, zero, kdim, vdim)));
                var (q, k, v) = (Random(3, 2, model), Random(4, 2, kdim), Random(4, 2, vdim));
                run = m => ((MultiheadAttention)m).forward(q, k, v, null, true, null).Item1;
                break;
            case TransformerEncoderLayer:
                candidates = Each(heads, activations, (h, a) => nn.TransformerEncoderLayer(model, h, feedForward, 0, a));
                var src = Random(3, 2, model);
                run = m => ((TransformerEncoderLayer)m).forward(src);
                break;
            case TransformerEncoder:
                int encoderLayers = Layers("layers.");
                candidates = Each(heads, activations, (h, a) => nn.TransformerEncoder(nn.TransformerEncoderLayer(model, h, feedForward, 0, a), encoderLayers));
                var encoderInput = Random(3, 2, model);
                run = m => ((TransformerEncoder)m).forward(encoderInput, null!, null!);
                break;
            case TransformerDecoderLayer:
                candidates = Each(heads, activations, (h, a) => nn.TransformerDecoderLayer(model, h, feedForward, 0, a));
                var (tgt, memory) = (Random(3, 2, model), Random(4, 2, model));
                run = m => ((TransformerDecoderLayer)m).forward(tgt, memory, null!, null!, null!, null!);
                break;
            case TransformerDecoder:
                int decoderLayers = Layers("layers.");
                candidates = Each(heads, activations, (h, a) => nn.TransformerDecoder(nn.TransformerDecoderLayer(model, h, feedForward, 0, a), decoderLayers));
                var (decoderInput, decoderMemory) = (Random(3, 2, model), Random(4, 2, model));
                run = m => ((TransformerDecoder)m).forward(decoderInput, decoderMemory, null!, null!, null!, null!);
                break;
            case Transformer:
                var (e, d) = (Layers("encoder.layers."), Layers("decoder.layers."));
                candidates = Each(heads, activations, (h, a) => nn.Transformer(model, h, e, d, feedForward, 0, a));
                var (source, target) = (Random(4, 2, model), Random(3, 2, model));
                run = m => ((Transformer)m).forward(source, target);
                break;
            default:
                throw new InvalidOperationException($"{module.GetType().Name} has no hidden settings to identify.");
        }
        return Identify(module, g, p, candidates, run, device);
    }

    private static IEnumerable<(HiddenSettings, Func<nn.Module>)> Each(long[] heads, (bool Gelu, nn.Activations Activation)[] activations,
        Func<long, nn.Activations, nn.Module> build) =>
        from h in heads
        from a in activations
        select (new HiddenSettings(h, a.Gelu, false), (Func<nn.Module>)(() => build(h, a.Activation)));

    private static HiddenSettings Identify(nn.Module module, OnnxGraph g, IReadOnlyDictionary<string, Tensor> p,
        IEnumerable<(HiddenSettings Settings, Func<nn.Module> Build)> candidates, Func<nn.Module, Tensor> run, Device device)
    {
        // Building candidates initializes their weights from the global generator; the caller's random stream stays as it was.
        var rngState = get_rng_state();
        try
        {
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            var expected = run(module);
            foreach (var (settings, build) in candidates)
            {
                using var candidate = build();
                candidate.to(p.Values.First().dtype).to(device);
                var theirs = candidate.named_parameters().ToDictionary(e => e.name, e => e.parameter);
                if (theirs.Count != p.Count || p.Any(e => !theirs.TryGetValue(e.Key, out var t) || !t.shape.SequenceEqual(e.Value.shape)))
                    continue;
                foreach (var (name, value) in p) theirs[name].copy_(value);
                candidate.eval();
                if (run(candidate).allclose(expected, 1e-4, 1e-5)) return settings;
            }
        }
        finally
        {
            set_rng_state(rngState);
        }
        throw new NotSupportedException(
            $"{module.GetType().Name} {OnnxGraph.DisplayPath(g.ModulePath)}: TorchSharp keeps its number of heads and activation inside libtorch " +
            "with no getter, and no setting the exporter knows (heads dividing the model size; ReLU or GELU; add_zero_attn) reproduces its forward, " +
            "so it cannot be written. Describe the block with MultiheadAttention, Linear and LayerNorm in an IOnnxExportable module instead.");
    }
}
