using static TorchSharp.torch;

namespace Lightning.Onnx;

/// <summary>
/// A tensor of the graph an <see cref="OnnxGraph"/> builds: a graph input, an initializer or a node's output. It
/// knows its shape from the module's eval-mode forward on the export sample, so converters can read ranks and sizes.
/// </summary>
public sealed class OnnxValue
{
    internal OnnxValue(string name) => Name = name;

    /// <summary>The value's name in the ONNX graph.</summary>
    public string Name { get; internal set; }

    /// <summary>True when the exporter knows the value's shape (every value made by a module call or a builder op that can compute it).</summary>
    public bool HasShape => Sample is not null;

    /// <summary>The number of dimensions.</summary>
    public int Rank => (int)RequireSample().dim();

    /// <summary>The sizes seen on the export sample; null where the size changes with a dynamic axis of the inputs.</summary>
    public IReadOnlyList<long?> Shape
    {
        get
        {
            var sample = RequireSample();
            return [.. Enumerable.Range(0, (int)sample.dim()).Select(i => sample.size(i) == Probe!.size(i) ? sample.size(i) : (long?)null)];
        }
    }

    /// <summary>The element type.</summary>
    public ScalarType ElementType => RequireSample().dtype;

    /// <summary>The value computed by TorchSharp on the export sample (eval mode).</summary>
    internal Tensor? Sample { get; private set; }

    /// <summary>
    /// The same value computed on a probe input whose dynamic axes are a little longer; a dimension whose size differs
    /// between <see cref="Sample"/> and the probe is dynamic.
    /// </summary>
    internal Tensor? Probe { get; private set; }

    internal void SetSamples(Tensor sample, Tensor probe) => (Sample, Probe) = (sample, probe);

    internal string ShapeText => Sample is null ? "unknown" : $"[{string.Join(", ", Sample.shape)}]";

    private Tensor RequireSample() => Sample ?? throw new InvalidOperationException(
        $"The shape of ONNX value '{Name}' is unknown: it was made by OnnxGraph.Node without an evaluate function. " +
        "Pass evaluate: (the TorchSharp computation of the node) so later converters can read its shape.");
}
