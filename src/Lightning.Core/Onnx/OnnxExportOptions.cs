using System.Text.RegularExpressions;

namespace Lightning.Onnx;

/// <summary>How <see cref="OnnxExportExtensions"/> writes a model: opset, names, dynamic axes and extra metadata.</summary>
public sealed partial class OnnxExportOptions
{
    /// <summary>The opset written when <see cref="Opset"/> is not set.</summary>
    public const int DefaultOpset = 17;

    /// <summary>The lowest opset the exporter writes.</summary>
    public const int MinOpset = 13;

    /// <summary>The highest opset the exporter writes.</summary>
    public const int MaxOpset = 21;

    /// <summary>The ONNX opset of the default domain, <see cref="MinOpset"/> to <see cref="MaxOpset"/> (default 17); the IR version follows it.</summary>
    public int Opset { get; init; } = DefaultOpset;

    /// <summary>Names of the graph inputs, one per input sample (default <c>input</c>, or <c>input_0</c>, <c>input_1</c>, … for several).</summary>
    public IReadOnlyList<string>? InputNames { get; init; }

    /// <summary>Names of the graph outputs, one per forward output (default <c>output</c>, or <c>output_0</c>, <c>output_1</c>, … for several).</summary>
    public IReadOnlyList<string>? OutputNames { get; init; }

    /// <summary>
    /// The axes of each input whose size may change at run time, by input name, each axis with its <c>dim_param</c>
    /// name (as PyTorch's <c>dynamic_axes</c>). Null (default): axis 0 of every input is <c>batch</c>. An empty
    /// dictionary fixes every size to the sample's. Output axes that follow a dynamic input axis become dynamic too.
    /// </summary>
    public IReadOnlyDictionary<string, IReadOnlyDictionary<int, string>>? DynamicAxes { get; init; }

    /// <summary>Extra <c>metadata_props</c> entries; they override hyperparameters of the same name.</summary>
    public IReadOnlyDictionary<string, string>? Metadata { get; init; }

    /// <summary>The IR version for <see cref="Opset"/>: the lowest that carries it (ONNX's release table), so older runtimes load it.</summary>
    internal long IrVersion => Opset switch
    {
        <= 14 => 7,
        <= 18 => 8,
        <= 20 => 9,
        _ => 10,
    };

    internal IReadOnlyList<string> ResolvedInputNames(int count) => InputNames ?? Numbered("input", count);

    internal IReadOnlyList<string> ResolvedOutputNames(int count) => OutputNames ?? Numbered("output", count);

    internal IReadOnlyDictionary<int, string> DynamicAxesOf(string input) =>
        DynamicAxes is null ? new Dictionary<int, string> { [0] = "batch" }
        : DynamicAxes.TryGetValue(input, out var axes) ? axes : new Dictionary<int, string>();

    internal void Validate(IReadOnlyList<long[]> sampleShapes)
    {
        if (Opset is < MinOpset or > MaxOpset)
            throw new ArgumentOutOfRangeException(nameof(Opset), Opset,
                $"{nameof(Opset)} = {Opset} is not allowed: the exporter writes opsets {MinOpset} to {MaxOpset}.");
        var inputs = ResolvedInputNames(sampleShapes.Count);
        if (inputs.Count != sampleShapes.Count)
            throw new ArgumentException(
                $"{nameof(InputNames)} has {inputs.Count} names for {sampleShapes.Count} input samples; give one name per sample.", nameof(InputNames));
        if (inputs.Any(string.IsNullOrWhiteSpace))
            throw new ArgumentException($"{nameof(InputNames)} holds an empty name; every input needs one.", nameof(InputNames));
        if (OutputNames?.Any(string.IsNullOrWhiteSpace) == true)
            throw new ArgumentException($"{nameof(OutputNames)} holds an empty name; every output needs one.", nameof(OutputNames));
        if (OutputNames is not null && OutputNames.Intersect(inputs).FirstOrDefault() is { } clash)
            throw new ArgumentException($"'{clash}' names both an input and an output; ONNX names each value once.", nameof(OutputNames));
        foreach (var input in DynamicAxes?.Keys ?? [])
            if (!inputs.Contains(input))
                throw new ArgumentException(
                    $"{nameof(DynamicAxes)} names input '{input}', but the inputs are [{string.Join(", ", inputs)}].", nameof(DynamicAxes));
        for (int i = 0; i < inputs.Count; i++)
        {
            var shape = sampleShapes[i];
            foreach (var (axis, dimParam) in DynamicAxesOf(inputs[i]))
            {
                if (axis < 0 || axis >= shape.Length)
                    throw new ArgumentException(
                        $"{nameof(DynamicAxes)}['{inputs[i]}'] names axis {axis}, but the input sample has rank {shape.Length} " +
                        $"(shape [{string.Join(", ", shape)}]).", nameof(DynamicAxes));
                if (!Identifier().IsMatch(dimParam ?? ""))
                    throw new ArgumentException(
                        $"{nameof(DynamicAxes)}['{inputs[i]}'][{axis}] = '{dimParam}' is not allowed: dim_param names are identifiers (letters, digits, _).",
                        nameof(DynamicAxes));
                if (shape[axis] == 0)
                    throw new ArgumentException($"The input sample '{inputs[i]}' has size 0 on dynamic axis {axis}; give it at least one entry.", "inputSample");
            }
        }
    }

    private static string[] Numbered(string name, int count) => count == 1 ? [name] : [.. Enumerable.Range(0, count).Select(i => $"{name}_{i}")];

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]*$")]
    private static partial Regex Identifier();
}
