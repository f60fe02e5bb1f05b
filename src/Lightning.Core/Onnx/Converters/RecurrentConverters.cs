using System.Reflection;
using TorchSharp.Modules;
using static Lightning.Onnx.Converters.LayerConverters;
using static TorchSharp.torch;

namespace Lightning.Onnx.Converters;

/// <summary>
/// LSTM, GRU and RNN as one ONNX LSTM/GRU/RNN node per layer. Each layer's weights go into ONNX's layout (directions stacked,
/// gates reordered, input and recurrent biases concatenated); outputs come back in PyTorch's layout.
/// </summary>
internal static class RecurrentConverters
{
    // PyTorch stacks LSTM gates as i, f, g, o and GRU gates as r, z, n; ONNX wants i, o, f, c and z, r, h.
    private static readonly int[] s_lstmGates = [0, 3, 1, 2];
    private static readonly int[] s_gruGates = [1, 0, 2];

    public static void Register(Action<Type, OnnxConverter<nn.Module>> add)
    {
        add(typeof(LSTM), (module, graph, inputs) => Convert(module, graph, inputs, "LSTM"));
        add(typeof(GRU), (module, graph, inputs) => Convert(module, graph, inputs, "GRU"));
        add(typeof(RNN), (module, graph, inputs) => Convert(module, graph, inputs, "RNN"));
    }

    private static IReadOnlyList<OnnxValue> Convert(nn.Module rnn, OnnxGraph g, IReadOnlyList<OnnxValue> inputs, string type)
    {
        bool isLstm = type == "LSTM";
        int states = isLstm ? 2 : 1;
        if (inputs.Count != 1 && inputs.Count != 1 + states)
            throw new ArgumentException(
                $"{type} {OnnxGraph.DisplayPath(g.ModulePath)} takes the sequence{(isLstm ? ", or the sequence, h0 and c0" : ", or the sequence and h0")}; " +
                $"it was called with {inputs.Count} inputs.", nameof(inputs));
        var x = inputs[0];
        RequireRank(g, x, type, "[sequence, batch, features] (batch first: [batch, sequence, features])", 3);

        long hidden = Field<long>(rnn, "_hidden_size");
        long layers = Field<long>(rnn, "_num_layers");
        bool batchFirst = Field<bool>(rnn, "_batch_first");
        int directions = Field<bool>(rnn, "_bidirectional") ? 2 : 1;
        var parameters = rnn.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter);
        var gates = GatesOf(type);
        var nonlinearity = type == "RNN" ? Nonlinearity((RNN)rnn, g, parameters, hidden, layers, batchFirst, directions) : null;

        // The node runs time-major; batch-first input is transposed in and out (ONNX's layout attribute needs opset 14).
        var sequence = batchFirst ? g.Transpose(x, 1, 0, 2) : x;
        var finalH = new List<OnnxValue>();
        var finalC = new List<OnnxValue>();
        for (long layer = 0; layer < layers; layer++)
        {
            var suffixes = directions == 2 ? new[] { $"l{layer}", $"l{layer}_reverse" } : [$"l{layer}"];
            var w = g.Initializer(stack(suffixes.Select(s => Reorder(parameters[$"weight_ih_{s}"], gates)).ToArray()), $"W_l{layer}");
            var r = g.Initializer(stack(suffixes.Select(s => Reorder(parameters[$"weight_hh_{s}"], gates)).ToArray()), $"R_l{layer}");
            var b = parameters.ContainsKey($"bias_ih_l{layer}")
                ? g.Initializer(stack(suffixes.Select(s => cat([Reorder(parameters[$"bias_ih_{s}"], gates), Reorder(parameters[$"bias_hh_{s}"], gates)])).ToArray()), $"B_l{layer}")
                : null;
            var initial = inputs.Skip(1).Select(state => Slice(g, state, layer * directions, (layer + 1) * directions)).ToArray();

            var attributes = Attributes(("hidden_size", hidden), ("direction", directions == 2 ? "bidirectional" : "forward"));
            if (type == "GRU") attributes["linear_before_reset"] = 1L;
            if (nonlinearity is not null) attributes["activations"] = Enumerable.Repeat(nonlinearity, directions).ToArray();
            var outputs = g.Node(type, [sequence, w, r, b, null, .. initial], isLstm ? 3 : 2, attributes);

            // Y is [sequence, directions, batch, hidden]; PyTorch concatenates the directions into the features.
            sequence = g.Node("Reshape", [g.Node("Transpose", [outputs[0]], Attributes(("perm", new long[] { 0, 2, 1, 3 }))), g.Constant(0, 0, -1)]);
            finalH.Add(outputs[1]);
            if (isLstm) finalC.Add(outputs[2]);
        }
        var output = batchFirst ? g.Node("Transpose", [sequence], Attributes(("perm", new long[] { 1, 0, 2 }))) : sequence;
        var results = new List<OnnxValue> { output, Join(g, finalH) };
        if (isLstm) results.Add(Join(g, finalC));

        var (samples, probes) = g.Evaluate(s => Forward(rnn, s), inputs, results.Count);
        for (int i = 0; i < results.Count; i++) results[i].SetSamples(samples[i], probes[i]);
        return results;
    }

    private static IReadOnlyList<Tensor> Forward(nn.Module rnn, IReadOnlyList<Tensor> s)
    {
        if (rnn is LSTM lstm)
        {
            var (y, h, c) = lstm.forward(s[0], s.Count == 3 ? (s[1], s[2]) : null);
            return [y, h, c];
        }
        var (output, hidden) = rnn is GRU gru ? gru.forward(s[0], s.Count == 2 ? s[1] : null) : ((RNN)rnn).forward(s[0], s.Count == 2 ? s[1] : null);
        return [output, hidden];
    }

    /// <summary>ONNX's name of the RNN's nonlinearity, which TorchSharp keeps inside libtorch: tanh or ReLU, whichever reproduces its forward.</summary>
    private static string Nonlinearity(RNN rnn, OnnxGraph g, Dictionary<string, Tensor> parameters, long hidden, long layers, bool batchFirst, int directions)
    {
        var first = parameters["weight_ih_l0"];
        using var input = randn([3, 2, first.size(1)], first.dtype, first.device, generator: new Generator(17, first.device));
        bool bias = parameters.ContainsKey("bias_ih_l0");
        return SettingProbe.Identify(rnn, g, parameters,
            new[] { ("Tanh", nn.NonLinearities.Tanh), ("Relu", nn.NonLinearities.ReLU) }.Select(c => (c.Item1,
                (Func<nn.Module>)(() => nn.RNN(first.size(1), hidden, layers, c.Item2, bias, batchFirst, 0, directions == 2)))),
            m => ((RNN)m).forward(input, null).Item1, "nonlinearity", "tanh or ReLU", "");
    }

    /// <summary>Where ONNX's <paramref name="op"/> (LSTM, GRU, RNN) takes each of PyTorch's stacked gates.</summary>
    internal static int[] GatesOf(string op) => op switch { "LSTM" => s_lstmGates, "GRU" => s_gruGates, _ => [0] };

    internal static Tensor Reorder(Tensor weight, int[] gates)
    {
        var chunks = weight.detach().chunk(gates.Length, 0);
        return cat(gates.Select(i => chunks[i]).ToArray());
    }

    private static OnnxValue Slice(OnnxGraph g, OnnxValue state, long start, long end) =>
        g.Node("Slice", [state, g.Constant(start), g.Constant(end), g.Constant(0)]);

    private static OnnxValue Join(OnnxGraph g, List<OnnxValue> states) =>
        states.Count == 1 ? states[0] : g.Node("Concat", states, Attributes(("axis", 0L)));

    private static T Field<T>(nn.Module rnn, string name)
    {
        // TorchSharp 0.107 keeps these hyperparameters in private fields with no public getter.
        var field = rnn.GetType().GetField(name, BindingFlags.Instance | BindingFlags.NonPublic)
            ?? throw new NotSupportedException($"This TorchSharp version's {rnn.GetType().Name} has no field {name}; the ONNX exporter needs it.");
        return (T)field.GetValue(rnn)!;
    }
}
