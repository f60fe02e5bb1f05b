using Lightning.Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Onnx;

/// <summary>
/// MultiheadAttention and the transformer modules, exported alone and in IOnnxExportable models, compared with ONNX
/// Runtime at two batch sizes and two sequence lengths (both dynamic), at the opsets where the lowering differs.
/// </summary>
public class OnnxAttentionTests
{
    private const long Model = 8;

    /// <summary>A module, its inputs for (batch, sequence) and its eval-mode forward.</summary>
    private sealed record Case(Func<nn.Module> Module, Func<long, long, Tensor[]> Inputs, Func<nn.Module, Tensor[], Tensor[]> Forward,
        string[] Names, Dictionary<string, Dictionary<int, string>> Axes);

    private static readonly Dictionary<int, string> s_sequenceFirst = new() { [0] = "sequence", [1] = "batch" };

    private static Case Attention(Func<nn.Module> module, bool keyPadding = false, bool causal = false, bool floatMask = false, long kdim = Model, long vdim = Model)
    {
        // Keys and values are one longer than the queries, so the two lengths stay apart (except for a causal mask, which is square).
        long Keys(long s) => causal ? s : s + 1;
        var names = new List<string> { "query", "key", "value" };
        var axes = new Dictionary<string, Dictionary<int, string>>
        {
            ["query"] = new() { [0] = "target", [1] = "batch" },
            ["key"] = new() { [0] = causal ? "target" : "source", [1] = "batch" },
            ["value"] = new() { [0] = causal ? "target" : "source", [1] = "batch" },
        };
        if (keyPadding)
        {
            names.Add("key_padding_mask");
            axes["key_padding_mask"] = new() { [0] = "batch", [1] = causal ? "target" : "source" };
        }
        if (causal)
        {
            names.Add("attn_mask");
            axes["attn_mask"] = new() { [0] = "target", [1] = "target" };
        }
        return new Case(module,
            (b, s) => [.. new[] { randn(s, b, Model), randn(Keys(s), b, kdim), randn(Keys(s), b, vdim) }
                .Concat(keyPadding ? [PaddingMask(b, Keys(s))] : [])
                .Concat(causal ? [CausalMask(s, floatMask)] : [])],
            (m, x) =>
            {
                var (y, w) = ((MultiheadAttention)m).forward(x[0], x[1], x[2], keyPadding ? x[3] : null, true, causal ? x[^1] : null);
                return [y, w];
            },
            [.. names], axes);
    }

    private static Case Encoder(Func<nn.Module> module, bool masks = false)
    {
        var names = masks ? new[] { "src", "src_mask", "src_key_padding_mask" } : ["src"];
        var axes = new Dictionary<string, Dictionary<int, string>> { ["src"] = s_sequenceFirst };
        if (masks)
        {
            axes["src_mask"] = new() { [0] = "sequence", [1] = "sequence" };
            axes["src_key_padding_mask"] = new() { [0] = "batch", [1] = "sequence" };
        }
        return new Case(module,
            (b, s) => masks ? [randn(s, b, Model), CausalMask(s, floatMask: false), PaddingMask(b, s)] : [randn(s, b, Model)],
            (m, x) => [m switch
            {
                TransformerEncoderLayer layer => masks ? layer.call(x[0], x[1], x[2]) : layer.forward(x[0]),
                TransformerEncoder encoder => encoder.forward(x[0], masks ? x[1] : null!, masks ? x[2] : null!),
                _ => throw new ArgumentException(m.GetType().Name),
            }],
            names, axes);
    }

    private static Case Decoder(Func<nn.Module> module, bool masks = false)
    {
        var names = masks ? new[] { "tgt", "memory", "tgt_mask", "memory_mask", "tgt_key_padding_mask", "memory_key_padding_mask" } : ["tgt", "memory"];
        var axes = new Dictionary<string, Dictionary<int, string>>
        {
            ["tgt"] = new() { [0] = "target", [1] = "batch" },
            ["memory"] = new() { [0] = "source", [1] = "batch" },
        };
        if (masks)
        {
            axes["tgt_mask"] = new() { [0] = "target", [1] = "target" };
            axes["memory_mask"] = new() { [0] = "target", [1] = "source" };
            axes["tgt_key_padding_mask"] = new() { [0] = "batch", [1] = "target" };
            axes["memory_key_padding_mask"] = new() { [0] = "batch", [1] = "source" };
        }
        return new Case(module,
            (b, s) => masks
                ? [randn(s, b, Model), randn(s + 1, b, Model), CausalMask(s, floatMask: true), zeros(s, s + 1, ScalarType.Bool), PaddingMask(b, s), PaddingMask(b, s + 1)]
                : [randn(s, b, Model), randn(s + 1, b, Model)],
            (m, x) => [m switch
            {
                TransformerDecoderLayer layer => layer.forward(x[0], x[1], At(x, 2), At(x, 3), At(x, 4), At(x, 5)),
                TransformerDecoder decoder => decoder.forward(x[0], x[1], At(x, 2), At(x, 3), At(x, 4), At(x, 5)),
                _ => throw new ArgumentException(m.GetType().Name),
            }],
            names, axes);
    }

    private static Tensor At(Tensor[] x, int i) => i < x.Length ? x[i] : null!;

    private static readonly Dictionary<string, Case> s_cases = new()
    {
        ["MultiheadAttention 2 heads"] = Attention(() => nn.MultiheadAttention(Model, 2)),
        ["MultiheadAttention 1 head, no bias"] = Attention(() => nn.MultiheadAttention(Model, 1, bias: false)),
        ["MultiheadAttention 4 heads, kdim vdim"] = Attention(() => nn.MultiheadAttention(Model, 4, kdim: 5, vdim: 5), kdim: 5, vdim: 5),
        ["MultiheadAttention add_bias_kv"] = Attention(() => nn.MultiheadAttention(Model, 2, add_bias_kv: true)),
        ["MultiheadAttention add_zero_attn"] = Attention(() => nn.MultiheadAttention(Model, 2, add_zero_attn: true)),
        ["MultiheadAttention key padding mask"] = Attention(() => nn.MultiheadAttention(Model, 2), keyPadding: true),
        ["MultiheadAttention causal bool mask and key padding"] = Attention(() => nn.MultiheadAttention(Model, 4), keyPadding: true, causal: true),
        ["MultiheadAttention float mask, bias_kv, zero_attn"] =
            Attention(() => nn.MultiheadAttention(Model, 2, add_bias_kv: true, add_zero_attn: true), keyPadding: true, causal: true, floatMask: true),
        ["TransformerEncoderLayer relu"] = Encoder(() => nn.TransformerEncoderLayer(Model, 2, 16, 0.1)),
        ["TransformerEncoderLayer gelu"] = Encoder(() => nn.TransformerEncoderLayer(Model, 4, 16, 0.1, nn.Activations.GELU)),
        ["TransformerEncoderLayer masks"] = Encoder(() => nn.TransformerEncoderLayer(Model, 2, 16), masks: true),
        ["TransformerEncoder 2 layers"] = Encoder(() => nn.TransformerEncoder(nn.TransformerEncoderLayer(Model, 2, 16, 0.1, nn.Activations.GELU), 2)),
        ["TransformerEncoder masks"] = Encoder(() => nn.TransformerEncoder(nn.TransformerEncoderLayer(Model, 8, 16), 2), masks: true),
        ["TransformerDecoderLayer relu"] = Decoder(() => nn.TransformerDecoderLayer(Model, 2, 16)),
        ["TransformerDecoderLayer gelu masks"] = Decoder(() => nn.TransformerDecoderLayer(Model, 4, 16, 0.1, nn.Activations.GELU), masks: true),
        ["TransformerDecoder 2 layers masks"] = Decoder(() => nn.TransformerDecoder(nn.TransformerDecoderLayer(Model, 2, 16), 2), masks: true),
    };

    public static TheoryData<string, int> Cases()
    {
        var data = new TheoryData<string, int>();
        foreach (var name in s_cases.Keys)
            foreach (var opset in new[] { 13, 17, 18, 21 })
                data.Add(name, opset);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void ToOnnx_AttentionModule_MatchesTorchSharp(string name, int opset)
    {
        var (module, inputs, forward, names, axes) = s_cases[name];
        manual_seed(11);
        var m = module();
        OnnxParity.AssertMatches(m, inputs, x => forward(m, x), Options(names, axes, opset));
    }

    [Theory]
    [InlineData(13)]
    [InlineData(17)]
    [InlineData(20)]
    public void ToOnnx_Transformer_MatchesTorchSharp(int opset)
    {
        manual_seed(12);
        var transformer = nn.Transformer(Model, 2, 2, 1, 16, 0.1, nn.Activations.GELU);
        string[] names = ["src", "tgt", "src_mask", "tgt_mask", "memory_mask", "src_key_padding_mask", "tgt_key_padding_mask", "memory_key_padding_mask"];
        var axes = new Dictionary<string, Dictionary<int, string>>
        {
            ["src"] = new() { [0] = "source", [1] = "batch" },
            ["tgt"] = new() { [0] = "target", [1] = "batch" },
            ["src_mask"] = new() { [0] = "source", [1] = "source" },
            ["tgt_mask"] = new() { [0] = "target", [1] = "target" },
            ["memory_mask"] = new() { [0] = "target", [1] = "source" },
            ["src_key_padding_mask"] = new() { [0] = "batch", [1] = "source" },
            ["tgt_key_padding_mask"] = new() { [0] = "batch", [1] = "target" },
            ["memory_key_padding_mask"] = new() { [0] = "batch", [1] = "source" },
        };
        Tensor[] Inputs(long b, long s) =>
        [
            randn(s + 1, b, Model), randn(s, b, Model), zeros(s + 1, s + 1, ScalarType.Bool), CausalMask(s, floatMask: false),
            zeros(s, s + 1), PaddingMask(b, s + 1), PaddingMask(b, s), PaddingMask(b, s + 1),
        ];

        OnnxParity.AssertMatches(transformer, Inputs, x => [transformer.call(x[0], x[1], x[2], x[3], x[4], x[5], x[6], x[7])],
            Options(names, axes, opset));
    }

    [Theory]
    [InlineData(13)]
    [InlineData(18)]
    public void ToOnnx_TransformerWithoutMasks_MatchesTorchSharp(int opset)
    {
        manual_seed(13);
        var transformer = nn.Transformer(Model, 4, 1, 2, 16);
        var axes = new Dictionary<string, Dictionary<int, string>>
        {
            ["src"] = new() { [0] = "source", [1] = "batch" },
            ["tgt"] = new() { [0] = "target", [1] = "batch" },
        };
        OnnxParity.AssertMatches(transformer, (b, s) => [randn(s + 2, b, Model), randn(s, b, Model)],
            x => [transformer.forward(x[0], x[1])], Options(["src", "tgt"], axes, opset));
    }

    [Theory]
    [InlineData(13)]
    [InlineData(17)]
    [InlineData(18)]
    [InlineData(21)]
    public void ToOnnx_BatchFirstEncoderClassifier_MatchesTorchSharp(int opset)
    {
        manual_seed(14);
        var model = new EncoderClassifier();
        OnnxParity.AssertMatches(model, (b, s) => [randn(b, s, 6)], x => [model.forward(x[0])],
            Options(["input"], new() { ["input"] = new() { [0] = "batch", [1] = "sequence" } }, opset));
    }

    [Theory]
    [InlineData(13)]
    [InlineData(17)]
    [InlineData(18)]
    [InlineData(21)]
    public void ToOnnx_PreNormBlockFromFunctionalOps_MatchesTorchSharp(int opset)
    {
        manual_seed(15);
        var model = new PreNormCausalBlock();
        OnnxParity.AssertMatches(model, (b, s) => [randn(b, s, Model)], x => [model.forward(x[0])],
            Options(["input"], new() { ["input"] = new() { [0] = "batch", [1] = "sequence" } }, opset));
    }

    private static OnnxExportOptions Options(string[] names, Dictionary<string, Dictionary<int, string>> axes, int opset) => new()
    {
        Opset = opset,
        InputNames = names,
        DynamicAxes = axes.ToDictionary(a => a.Key, a => (IReadOnlyDictionary<int, string>)a.Value),
    };

    /// <summary>
    /// -inf above the diagonal, or a boolean mask true there (which libtorch's C++ attention adds as 1 rather than
    /// blocking; the export reproduces that).
    /// </summary>
    private static Tensor CausalMask(long length, bool floatMask)
    {
        var blocked = ones(length, length, ScalarType.Bool).triu(1);
        return floatMask ? zeros(length, length).masked_fill(blocked, double.NegativeInfinity) : blocked;
    }

    /// <summary>Padding at the end of every other sequence; the first position is never padded, so no row is fully blocked.</summary>
    private static Tensor PaddingMask(long batch, long length)
    {
        var mask = zeros(batch, length, ScalarType.Bool);
        for (long b = 0; b < batch; b += 2)
            if (length > 1) mask[b, length - 1] = tensor(true);
        return mask;
    }

    /// <summary>
    /// What a sequence classifier does around TorchSharp's (sequence-first) encoder: batch-first input, a learned
    /// positional table cut to the sequence length, a transpose in and out, and the mean over the sequence.
    /// </summary>
    private sealed class EncoderClassifier : nn.Module<Tensor, Tensor>, IOnnxExportable
    {
        private readonly Linear embed = nn.Linear(6, Model);
        private readonly Parameter position = nn.Parameter(randn(16, Model) * 0.1);
        private readonly TransformerEncoder encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(Model, 2, 16, 0.1, nn.Activations.GELU), 2);
        private readonly Linear head = nn.Linear(Model, 3);

        public EncoderClassifier() : base(nameof(EncoderClassifier)) => RegisterComponents();

        public override Tensor forward(Tensor x)
        {
            var h = embed.forward(x) + position[..(int)x.size(1)];
            h = encoder.forward(h.transpose(0, 1), null!, null!).transpose(0, 1);
            return head.forward(h.mean([1])).log_softmax(-1);
        }

        public IReadOnlyList<OnnxValue> ExportOnnx(OnnxGraph graph, IReadOnlyList<OnnxValue> inputs)
        {
            var x = inputs[0];
            var table = graph.Slice(graph.Initializer(position, "position"), 0, graph.Size(x, 1));
            var h = graph.Add(graph.Call(embed, x), table);
            h = graph.Transpose(graph.Call(encoder, graph.Transpose(h, 1, 0, 2))[0], 1, 0, 2);
            return [graph.LogSoftmax(graph.Call(head, graph.Mean(h, [1])))];
        }
    }

    /// <summary>
    /// A pre-norm causal self-attention block written out by hand (the norm_first layout TorchSharp's C++ layers lack):
    /// matmul, scaled scores, a causal mask cut from a buffer, softmax, heads split and merged by reshape and transpose.
    /// </summary>
    private sealed class PreNormCausalBlock : nn.Module<Tensor, Tensor>, IOnnxExportable
    {
        private const long Heads = 2;
        private readonly LayerNorm norm1 = nn.LayerNorm(Model);
        private readonly Linear qkv = nn.Linear(Model, 3 * Model);
        private readonly Linear project = nn.Linear(Model, Model);
        private readonly LayerNorm norm2 = nn.LayerNorm(Model);
        private readonly Sequential feedForward = nn.Sequential(nn.Linear(Model, 16), nn.GELU(GELU.Approximate.tanh), nn.Linear(16, Model));
        private readonly Tensor blocked = ones(16, 16, ScalarType.Bool).triu(1);

        public PreNormCausalBlock() : base(nameof(PreNormCausalBlock)) => RegisterComponents();

        public override Tensor forward(Tensor x)
        {
            long b = x.size(0), s = x.size(1);
            var parts = qkv.forward(norm1.forward(x)).reshape(b, s, 3, Heads, Model / Heads).permute(2, 0, 3, 1, 4);
            var scores = parts[0].matmul(parts[1].transpose(-2, -1)) / Math.Sqrt(Model / Heads);
            scores = scores.masked_fill(blocked[..(int)s, ..(int)s], double.NegativeInfinity);
            var attended = scores.softmax(-1).matmul(parts[2]).permute(0, 2, 1, 3).reshape(b, s, Model);
            x = x + project.forward(attended);
            return x + feedForward.forward(norm2.forward(x));
        }

        public IReadOnlyList<OnnxValue> ExportOnnx(OnnxGraph graph, IReadOnlyList<OnnxValue> inputs)
        {
            var x = inputs[0];
            var length = graph.Size(x, 1);
            var parts = graph.Transpose(graph.Reshape(graph.Call(qkv, graph.Call(norm1, x)), 0, 0, 3, Heads, Model / Heads), 2, 0, 3, 1, 4);
            OnnxValue Part(long i) => graph.Squeeze(graph.Slice(parts, 0, i, i + 1), 0);
            var scores = graph.Div(graph.MatMul(Part(0), graph.Transpose(Part(1), 0, 1, 3, 2)), graph.Scalar(Math.Sqrt(Model / Heads), x));
            var mask = graph.Slice(graph.Slice(graph.Initializer(blocked, "blocked"), 0, length), 1, length);
            scores = graph.MaskedFill(scores, mask, double.NegativeInfinity);
            var attended = graph.Reshape(graph.Transpose(graph.MatMul(graph.Softmax(scores), Part(2)), 0, 2, 1, 3), 0, 0, Model);
            x = graph.Add(x, graph.Call(project, attended));
            return [graph.Add(x, graph.Call(feedForward, graph.Call(norm2, x)))];
        }
    }
}
