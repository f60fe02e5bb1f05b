using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Onnx.Converters;

/// <summary>
/// Identifies settings that TorchSharp 0.107 keeps inside a libtorch C++ module with no getter (attention heads, a
/// recurrent nonlinearity): each possible setting is built as a fresh module with the same parameters, and the first
/// whose forward matches the module's own on a fixed random input is taken.
/// </summary>
internal static class SettingProbe
{
    public static T Identify<T>(nn.Module module, OnnxGraph g, IReadOnlyDictionary<string, Tensor> p,
        IEnumerable<(T Settings, Func<nn.Module> Build)> candidates, Func<nn.Module, Tensor> run, string hidden, string known, string instead)
    {
        var first = p.Values.First();
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
                candidate.to(first.dtype).to(first.device);
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
            $"{module.GetType().Name} {OnnxGraph.DisplayPath(g.ModulePath)}: TorchSharp keeps its {hidden} inside libtorch with no getter, and no " +
            $"setting the exporter knows ({known}) reproduces its forward, so it cannot be written. {instead}");
    }
}
