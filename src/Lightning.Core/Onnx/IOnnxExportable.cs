namespace Lightning.Onnx;

/// <summary>
/// A module that describes its own forward as an ONNX graph. Implement it on modules whose forward does more than
/// chain children (residual adds, concatenation, reshapes) and on a <see cref="LightningModule"/> to export it
/// with <see cref="OnnxExportExtensions.ToOnnx(TorchSharp.torch.nn.Module, string, TorchSharp.torch.Tensor, OnnxExportOptions?)"/>.
/// </summary>
/// <remarks>
/// Builder ops compute each value's TorchSharp result on the export sample, so shapes are known throughout; when a
/// <c>nn.Module&lt;Tensor, Tensor&gt;</c> returns a value made without one (an <see cref="OnnxGraph.Node(string, IReadOnlyList{OnnxValue?}, IReadOnlyDictionary{string, object}?, Func{IReadOnlyList{TorchSharp.torch.Tensor}, TorchSharp.torch.Tensor}?)"/>
/// without <c>evaluate</c>), the exporter takes the shape from the module's own forward.
/// </remarks>
/// <example>
/// A residual block:
/// <code>
/// public IReadOnlyList&lt;OnnxValue&gt; ExportOnnx(OnnxGraph graph, IReadOnlyList&lt;OnnxValue&gt; inputs) =&gt;
///     [graph.Add(inputs[0], graph.Call(body, inputs[0]))];
/// </code>
/// </example>
public interface IOnnxExportable
{
    /// <summary>Adds the nodes of this module's eval-mode forward to <paramref name="graph"/>.</summary>
    /// <param name="graph">The graph being built; its ops take and return <see cref="OnnxValue"/>s.</param>
    /// <param name="inputs">The forward's inputs, in order.</param>
    /// <returns>The forward's outputs, in order.</returns>
    IReadOnlyList<OnnxValue> ExportOnnx(OnnxGraph graph, IReadOnlyList<OnnxValue> inputs);
}
