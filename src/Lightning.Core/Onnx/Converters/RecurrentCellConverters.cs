using TorchSharp;
using TorchSharp.Modules;
using static Lightning.Onnx.Converters.LayerConverters;
using static Lightning.Onnx.Converters.RecurrentConverters;
using static TorchSharp.torch;

namespace Lightning.Onnx.Converters;

/// <summary>RNNCell, GRUCell and LSTMCell as one step of ONNX's RNN/GRU/LSTM node: [batch, input] in, [batch, hidden] out.</summary>
internal static class RecurrentCellConverters
{
    public static void Register(Action<Type, OnnxConverter<nn.Module>> add)
    {
        add(typeof(RNNCell), (m, g, inputs) => Step(m, g, inputs, "RNN"));
        add(typeof(GRUCell), (m, g, inputs) => Step(m, g, inputs, "GRU"));
        add(typeof(LSTMCell), (m, g, inputs) => Step(m, g, inputs, "LSTM"));
    }

    private static IReadOnlyList<OnnxValue> Step(nn.Module cell, OnnxGraph g, IReadOnlyList<OnnxValue> inputs, string op)
    {
        var type = cell.GetType().Name;
        int states = op == "LSTM" ? 2 : 1;
        if (inputs.Count != 1 && inputs.Count != 1 + states)
            throw new ArgumentException(
                $"{type} {OnnxGraph.DisplayPath(g.ModulePath)} takes the input{(states == 2 ? ", or the input, h and c" : ", or the input and h")}; " +
                $"it was called with {inputs.Count} inputs.", nameof(inputs));
        RequireRank(g, inputs[0], type, "[batch, features]", 2);
        var p = cell.named_parameters().ToDictionary(e => e.name, e => (Tensor)e.parameter.detach());
        var gates = GatesOf(op);
        long hidden = p["weight_hh"].size(1);

        var w = g.Initializer(Reorder(p["weight_ih"], gates).unsqueeze(0), "W");
        var r = g.Initializer(Reorder(p["weight_hh"], gates).unsqueeze(0), "R");
        var b = p.TryGetValue("bias_ih", out var bih) ? g.Initializer(cat([Reorder(bih, gates), Reorder(p["bias_hh"], gates)]).unsqueeze(0), "B") : null;
        var attributes = Attributes(("hidden_size", hidden));
        if (op == "GRU") attributes["linear_before_reset"] = 1L;
        if (cell is RNNCell rnnCell) attributes["activations"] = new[] { Nonlinearity(rnnCell, g, p, hidden) };

        // One time step: [1, batch, ·] in, the final states [1, batch, hidden] out.
        OnnxValue Step1(OnnxValue v) => g.Node("Unsqueeze", [v, g.Constant(0)]);
        var outputs = g.Node(op, [Step1(inputs[0]), w, r, b, null, .. inputs.Skip(1).Select(Step1)], 1 + states, attributes);
        var results = outputs.Skip(1).Select(state => g.Node("Squeeze", [state, g.Constant(0)])).ToArray();

        var (samples, probes) = g.Evaluate(s => Forward(cell, s), inputs, results.Length);
        for (int i = 0; i < results.Length; i++) results[i].SetSamples(samples[i], probes[i]);
        return results;
    }

    private static IReadOnlyList<Tensor> Forward(nn.Module cell, IReadOnlyList<Tensor> s)
    {
        switch (cell)
        {
            case LSTMCell lstm:
                // TorchSharp 0.107's LSTMCell fails without a state, so the missing one is PyTorch's default: zeros.
                var zero = s.Count == 3 ? null : zeros(s[0].size(0), lstm.named_parameters().First(e => e.name == "weight_hh").parameter.size(1), s[0].dtype);
                var (h, c) = lstm.forward(s[0], s.Count == 3 ? (s[1], s[2]) : (zero!, zero!));
                return [h, c];
            case GRUCell gru:
                return [gru.forward(s[0], s.Count == 2 ? s[1] : null!)];
            default:
                return [((RNNCell)cell).forward(s[0], s.Count == 2 ? s[1] : null!)];
        }
    }

    private static string Nonlinearity(RNNCell cell, OnnxGraph g, Dictionary<string, Tensor> p, long hidden)
    {
        var first = p["weight_ih"];
        using var input = randn([3, first.size(1)], first.dtype, first.device, generator: new Generator(17, first.device));
        bool bias = p.ContainsKey("bias_ih");
        return SettingProbe.Identify(cell, g, p,
            new[] { ("Tanh", nn.NonLinearities.Tanh), ("Relu", nn.NonLinearities.ReLU) }.Select(c => (c.Item1,
                (Func<nn.Module>)(() => nn.RNNCell(first.size(1), hidden, c.Item2, bias)))),
            m => ((RNNCell)m).forward(input, null!), "nonlinearity", "tanh or ReLU", "");
    }
}
