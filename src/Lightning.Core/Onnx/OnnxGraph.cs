using System.Runtime.InteropServices;
using Google.Protobuf;
using Lightning.Onnx.Proto;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Onnx;

/// <summary>
/// Builds the ONNX graph of a module's eval-mode forward. The exporter hands it to <see cref="IOnnxExportable.ExportOnnx"/>
/// and to the converters: they add nodes and initializers and call child modules, each of which adds its own nodes.
/// Names follow the module path (<c>encoder.0.weight</c>); every value keeps the TorchSharp result of the export
/// sample, so later steps know its shape.
/// </summary>
public sealed class OnnxGraph
{
    private readonly List<NodeRecord> _nodes = [];
    private readonly List<TensorProto> _initializers = [];
    private readonly List<OnnxValue> _inputs = [];
    private readonly Dictionary<Tensor, OnnxValue> _initializerOf = new(ReferenceEqualityComparer.Instance);
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);
    private readonly Dictionary<(long Sample, long Probe), string> _dimParams = [];
    private readonly Stack<(nn.Module Module, string Path)> _scopes = new();

    internal OnnxGraph(int opset, nn.Module root)
    {
        Opset = opset;
        _scopes.Push((root, ""));
    }

    /// <summary>The ONNX opset (of the default domain) being written; converters pick ops and forms by it.</summary>
    public int Opset { get; }

    /// <summary>The path of the module whose graph is being described (<c>encoder.2</c>; empty for the exported module).</summary>
    public string ModulePath => _scopes.Peek().Path;

    /// <summary>Adds the nodes of one call of a child module and returns its output.</summary>
    /// <param name="module">A child module; its path in the model comes from where it is registered.</param>
    /// <param name="input">The input of its forward.</param>
    public OnnxValue Call(nn.Module<Tensor, Tensor> module, OnnxValue input)
    {
        var outputs = Call((nn.Module)module, input);
        if (outputs.Count != 1)
            throw new InvalidOperationException($"'{PathOf(module)}' ({module.GetType().Name}) returned {outputs.Count} ONNX values; its forward returns one tensor.");
        return outputs[0];
    }

    /// <summary>Adds the nodes of one call of a child module (e.g. an LSTM: output, h_n, c_n) and returns its outputs.</summary>
    /// <param name="module">A child module; its path in the model comes from where it is registered.</param>
    /// <param name="inputs">The inputs of its forward, in order.</param>
    public IReadOnlyList<OnnxValue> Call(nn.Module module, params OnnxValue[] inputs)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentNullException.ThrowIfNull(inputs);
        var path = PathOf(module);
        _scopes.Push((module, path));
        try
        {
            IReadOnlyList<OnnxValue> outputs;
            if (module is IOnnxExportable exportable)
                outputs = exportable.ExportOnnx(this, inputs);
            else if (OnnxConverters.Find(module.GetType()) is { } converter)
                outputs = converter(module, this, inputs);
            else
                throw Unsupported(module, path);

            // Converters of single-tensor layers leave their outputs' samples to the layer's own forward.
            if (outputs is [{ HasShape: false } output] && inputs is [{ HasShape: true }] && module is nn.Module<Tensor, Tensor> layer)
            {
                var (sample, probe) = Evaluate(s => layer.forward(s[0]), inputs);
                output.SetSamples(sample, probe);
            }
            if (outputs.FirstOrDefault(o => !o.HasShape) is { } unknown)
                throw new InvalidOperationException(
                    $"{DisplayPath(path)} ({module.GetType().Name}) returned ONNX value '{unknown.Name}' whose shape is unknown; " +
                    "make it with a builder op or pass evaluate: to OnnxGraph.Node.");
            return outputs;
        }
        finally
        {
            _scopes.Pop();
        }
    }

    /// <summary>Adds a node with one output.</summary>
    /// <param name="opType">The ONNX operator (default domain), e.g. <c>"Gemm"</c>.</param>
    /// <param name="inputs">Its inputs; null for an optional input left out.</param>
    /// <param name="attributes">Attributes by name: <see cref="long"/>, <see cref="int"/>, <see cref="bool"/>, <see cref="float"/>,
    /// <see cref="double"/>, <see cref="string"/>, <c>long[]</c>, <c>float[]</c> or a <see cref="Tensor"/>.</param>
    /// <param name="evaluate">The same computation in TorchSharp, so the output's shape is known; without it the output
    /// can only feed nodes whose outputs need no shape.</param>
    public OnnxValue Node(string opType, IReadOnlyList<OnnxValue?> inputs, IReadOnlyDictionary<string, object>? attributes = null,
        Func<IReadOnlyList<Tensor>, Tensor>? evaluate = null) =>
        Node(opType, inputs, 1, attributes, evaluate is null ? null : s => [evaluate(s)])[0];

    /// <summary>Adds a node with <paramref name="outputCount"/> outputs.</summary>
    /// <param name="opType">The ONNX operator (default domain), e.g. <c>"LSTM"</c>.</param>
    /// <param name="inputs">Its inputs; null for an optional input left out.</param>
    /// <param name="outputCount">How many outputs to name.</param>
    /// <param name="attributes">Attributes by name; see <see cref="Node(string, IReadOnlyList{OnnxValue?}, IReadOnlyDictionary{string, object}?, Func{IReadOnlyList{Tensor}, Tensor}?)"/>.</param>
    /// <param name="evaluate">The same computation in TorchSharp, returning one tensor per output.</param>
    public IReadOnlyList<OnnxValue> Node(string opType, IReadOnlyList<OnnxValue?> inputs, int outputCount,
        IReadOnlyDictionary<string, object>? attributes = null, Func<IReadOnlyList<Tensor>, IReadOnlyList<Tensor>>? evaluate = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(opType);
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentOutOfRangeException.ThrowIfLessThan(outputCount, 1);
        var name = UniqueName($"/{ModulePath.Replace('.', '/')}/{opType}".Replace("//", "/"));
        var outputs = Enumerable.Range(0, outputCount).Select(i => new OnnxValue(UniqueName($"{name}_output_{i}"))).ToArray();
        _nodes.Add(new NodeRecord(opType, name, [.. inputs], outputs, attributes ?? new Dictionary<string, object>()));
        if (evaluate is not null)
        {
            var present = inputs.Select(v => v ?? throw new ArgumentException(
                $"{opType}: an evaluate function needs every input present; compute optional inputs in TorchSharp yourself.", nameof(inputs))).ToArray();
            var samples = Evaluate(evaluate, present, outputCount);
            for (int i = 0; i < outputCount; i++) outputs[i].SetSamples(samples.Samples[i], samples.Probes[i]);
        }
        return outputs;
    }

    /// <summary>
    /// Adds <paramref name="tensor"/> (a weight, or anything derived from one) as an initializer named
    /// <c>{module path}.{name}</c>; the same tensor object given twice is stored once.
    /// </summary>
    public OnnxValue Initializer(Tensor tensor, string name)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (_initializerOf.TryGetValue(tensor, out var existing)) return existing;
        var value = new OnnxValue(UniqueName(ModulePath.Length == 0 ? name : $"{ModulePath}.{name}"));
        var data = tensor.detach().cpu().contiguous();
        var proto = new TensorProto
        {
            Name = value.Name,
            DataType = (int)ElementTypeOf(data.dtype, value.Name),
            RawData = ByteString.CopyFrom(data.bytes),
        };
        proto.Dims.AddRange(data.shape);
        _initializers.Add(proto);
        value.SetSamples(data, data);
        _initializerOf[tensor] = value;
        return value;
    }

    /// <summary>A 1-D int64 constant (shapes, axes, indices).</summary>
    public OnnxValue Constant(params long[] values) => Initializer(tensor(values, ScalarType.Int64), "constant");

    /// <summary>A scalar constant of <paramref name="like"/>'s element type, for arithmetic with it.</summary>
    public OnnxValue Scalar(double value, OnnxValue like) => Scalar(value, like.ElementType);

    /// <summary>A scalar constant of element type <paramref name="type"/>.</summary>
    public OnnxValue Scalar(double value, ScalarType type) => Initializer(tensor(value, type), "constant");

    /// <summary>Elementwise <c>a + b</c> with broadcasting (ONNX <c>Add</c>).</summary>
    public OnnxValue Add(OnnxValue a, OnnxValue b) => Node("Add", [a, b], evaluate: s => s[0] + s[1]);

    /// <summary>Elementwise <c>a - b</c> with broadcasting (ONNX <c>Sub</c>).</summary>
    public OnnxValue Sub(OnnxValue a, OnnxValue b) => Node("Sub", [a, b], evaluate: s => s[0] - s[1]);

    /// <summary>Elementwise <c>a * b</c> with broadcasting (ONNX <c>Mul</c>).</summary>
    public OnnxValue Mul(OnnxValue a, OnnxValue b) => Node("Mul", [a, b], evaluate: s => s[0] * s[1]);

    /// <summary>Concatenation along <paramref name="axis"/> (ONNX <c>Concat</c>, as <c>torch.cat</c>).</summary>
    public OnnxValue Concat(long axis, params OnnxValue[] values) =>
        values.Length == 1 ? values[0] : Node("Concat", values, new Dictionary<string, object> { ["axis"] = axis }, s => cat([.. s], axis));

    /// <summary>Permutes dimensions (ONNX <c>Transpose</c>, as <c>permute</c>).</summary>
    public OnnxValue Transpose(OnnxValue x, params long[] perm) =>
        Node("Transpose", [x], new Dictionary<string, object> { ["perm"] = perm }, s => s[0].permute(perm));

    /// <summary>Elementwise <c>a / b</c> with broadcasting (ONNX <c>Div</c>).</summary>
    public OnnxValue Div(OnnxValue a, OnnxValue b) => Node("Div", [a, b], evaluate: s => s[0] / s[1]);

    /// <summary>Matrix product with batch broadcasting (ONNX <c>MatMul</c>, as <c>torch.matmul</c>).</summary>
    public OnnxValue MatMul(OnnxValue a, OnnxValue b) => Node("MatMul", [a, b], evaluate: s => s[0].matmul(s[1]));

    /// <summary>Softmax along <paramref name="axis"/> (ONNX <c>Softmax</c>).</summary>
    public OnnxValue Softmax(OnnxValue x, long axis = -1) =>
        Node("Softmax", [x], new Dictionary<string, object> { ["axis"] = axis }, s => s[0].softmax(axis));

    /// <summary>Log-softmax along <paramref name="axis"/> (ONNX <c>LogSoftmax</c>).</summary>
    public OnnxValue LogSoftmax(OnnxValue x, long axis = -1) =>
        Node("LogSoftmax", [x], new Dictionary<string, object> { ["axis"] = axis }, s => s[0].log_softmax(axis));

    /// <summary>The mean over <paramref name="axes"/> (ONNX <c>ReduceMean</c>; its axes are an attribute before opset 18, an input from it).</summary>
    public OnnxValue Mean(OnnxValue x, long[] axes, bool keepDims = false) =>
        Reduce("ReduceMean", x, axes, keepDims, evaluate: s => s[0].mean(axes, keepDims));

    /// <summary>The sum over <paramref name="axes"/> (ONNX <c>ReduceSum</c>, whose axes are an input from opset 13).</summary>
    public OnnxValue Sum(OnnxValue x, long[] axes, bool keepDims = false) =>
        Node("ReduceSum", [x, Constant(axes)], new Dictionary<string, object> { ["keepdims"] = keepDims ? 1L : 0L },
            s => s[0].sum(axes, keepDims));

    /// <summary>
    /// Adds an ONNX reduction (ReduceMean, ReduceMax, …) in the form <see cref="Opset"/> wants: axes as an attribute
    /// before opset 18 and as an input from it (ReduceSum took the input form at 13).
    /// </summary>
    public OnnxValue Reduce(string opType, OnnxValue x, long[] axes, bool keepDims, Func<IReadOnlyList<Tensor>, Tensor>? evaluate = null)
    {
        ArgumentNullException.ThrowIfNull(axes);
        var attributes = new Dictionary<string, object> { ["keepdims"] = keepDims ? 1L : 0L };
        if (opType == "ReduceSum" || Opset >= 18)
            return Node(opType, [x, Constant(axes)], attributes, evaluate);
        attributes["axes"] = axes;
        return Node(opType, [x], attributes, evaluate);
    }

    /// <summary>
    /// <c>x</c> sliced along <paramref name="axis"/> from <paramref name="start"/> to <paramref name="end"/> (exclusive;
    /// <see cref="long.MaxValue"/> for the end) with <paramref name="step"/> (ONNX <c>Slice</c>, as <c>x[.., start..end]</c>).
    /// </summary>
    public OnnxValue Slice(OnnxValue x, long axis, long start, long end, long step = 1) =>
        Node("Slice", [x, Constant(start), Constant(end), Constant(axis), Constant(step)],
            evaluate: s => s[0].slice(axis, start, Math.Min(end, s[0].size((int)axis)), step));

    /// <summary>
    /// <c>x</c> sliced along <paramref name="axis"/> up to a size known at run time, e.g. a positional table cut to
    /// the sequence length: <c>Slice(table, 0, graph.Size(x, 1))</c>.
    /// </summary>
    public OnnxValue Slice(OnnxValue x, long axis, OnnxValue end) =>
        Node("Slice", [x, Constant(0), end, Constant(axis)],
            evaluate: s => s[0].slice(axis, 0, Math.Min(s[2][0].item<long>(), s[0].size((int)axis)), 1));

    /// <summary>The size of <paramref name="axis"/> of <paramref name="x"/> as a 1-D int64 tensor of one element, read at run time.</summary>
    public OnnxValue Size(OnnxValue x, long axis) =>
        Node("Gather", [Node("Shape", [x], evaluate: s => tensor(s[0].shape, ScalarType.Int64)), Constant(axis)],
            new Dictionary<string, object> { ["axis"] = 0L }, s => s[0].index_select(0, s[1]));

    /// <summary>Inserts size-1 axes (ONNX <c>Unsqueeze</c>).</summary>
    public OnnxValue Unsqueeze(OnnxValue x, params long[] axes) =>
        Node("Unsqueeze", [x, Constant(axes)], evaluate: s =>
        {
            var y = s[0];
            foreach (var axis in axes.Select(a => a < 0 ? a + s[0].dim() + axes.Length : a).Order()) y = y.unsqueeze(axis);
            return y;
        });

    /// <summary>Removes size-1 axes (ONNX <c>Squeeze</c>).</summary>
    public OnnxValue Squeeze(OnnxValue x, params long[] axes) =>
        Node("Squeeze", [x, Constant(axes)], evaluate: s =>
        {
            var y = s[0];
            foreach (var axis in axes.Select(a => a < 0 ? a + s[0].dim() : a).OrderDescending()) y = y.squeeze(axis);
            return y;
        });

    /// <summary>Elementwise choice, <paramref name="whenTrue"/> where <paramref name="condition"/> holds (ONNX <c>Where</c>, as <c>torch.where</c>).</summary>
    public OnnxValue Where(OnnxValue condition, OnnxValue whenTrue, OnnxValue whenFalse) =>
        Node("Where", [condition, whenTrue, whenFalse], evaluate: s => where(s[0], s[1], s[2]));

    /// <summary><paramref name="x"/> with <paramref name="value"/> where the boolean <paramref name="mask"/> holds (as <c>masked_fill</c>).</summary>
    public OnnxValue MaskedFill(OnnxValue x, OnnxValue mask, double value) => Where(mask, Scalar(value, x), x);

    /// <summary>Converts the element type (ONNX <c>Cast</c>).</summary>
    public OnnxValue Cast(OnnxValue x, ScalarType type) =>
        Node("Cast", [x], new Dictionary<string, object> { ["to"] = (long)ElementTypeOf(type, x.Name) }, s => s[0].to_type(type));

    /// <summary>
    /// Reshapes with ONNX's rules: 0 copies the input's size at that position (use it for the batch dimension, so the
    /// graph keeps working for other batch sizes) and -1 is inferred.
    /// </summary>
    public OnnxValue Reshape(OnnxValue x, params long[] shape) =>
        Node("Reshape", [x, Constant(shape)], evaluate: s => s[0].reshape([.. shape.Select((d, i) => d == 0 ? s[0].size(i) : d)]));

    /// <summary>
    /// Reshapes <paramref name="x"/> to the shape of <paramref name="target"/>'s result (a TorchSharp reshape of the
    /// same data), taking dynamic sizes from <paramref name="x"/>'s shape at run time.
    /// </summary>
    internal OnnxValue ReshapeLike(OnnxValue x, Func<Tensor, Tensor> target)
    {
        var (sample, probe) = Evaluate(s => target(s[0]), [x]);
        var inputPairs = Enumerable.Range(0, x.Rank).Select(i => (x.Sample!.size(i), x.Probe!.size(i))).ToList();
        var pieces = new List<OnnxValue>();
        var constants = new List<long>();
        bool inferred = false;
        for (int j = 0; j < sample.dim(); j++)
        {
            var pair = (sample.size(j), probe.size(j));
            if (pair.Item1 == pair.Item2) { constants.Add(pair.Item1); continue; }
            if (j < inputPairs.Count && inputPairs[j] == pair) { constants.Add(0); continue; }
            int axis = inputPairs.IndexOf(pair);
            if (axis < 0)
            {
                // A dynamic size made of several input sizes (a flattened batch × sequence); Reshape infers one such.
                if (inferred)
                    throw new NotSupportedException(
                        $"{DisplayPath(ModulePath)} reshapes {x.ShapeText} to {sample.dim()}-D with two sizes that depend on dynamic axes; ONNX Reshape can infer only one.");
                inferred = true;
                constants.Add(-1);
                continue;
            }
            if (constants.Count > 0) pieces.Add(Constant([.. constants]));
            constants.Clear();
            pieces.Add(Node("Gather", [Node("Shape", [x]), Constant(axis)], new Dictionary<string, object> { ["axis"] = 0L }));
        }
        if (constants.Count > 0 || pieces.Count == 0) pieces.Add(Constant([.. constants]));
        var shape = pieces.Count == 1 ? pieces[0] : Node("Concat", pieces, new Dictionary<string, object> { ["axis"] = 0L });
        var output = Node("Reshape", [x, shape]);
        output.SetSamples(sample, probe);
        return output;
    }

    /// <summary>Runs a TorchSharp computation on the samples and on the probes of <paramref name="inputs"/>.</summary>
    internal (Tensor Sample, Tensor Probe) Evaluate(Func<IReadOnlyList<Tensor>, Tensor> compute, IReadOnlyList<OnnxValue> inputs)
    {
        var (samples, probes) = Evaluate(s => [compute(s)], inputs, 1);
        return (samples[0], probes[0]);
    }

    internal (IReadOnlyList<Tensor> Samples, IReadOnlyList<Tensor> Probes) Evaluate(
        Func<IReadOnlyList<Tensor>, IReadOnlyList<Tensor>> compute, IReadOnlyList<OnnxValue> inputs, int outputCount)
    {
        var (module, path) = _scopes.Peek();
        if (inputs.FirstOrDefault(i => !i.HasShape) is { } unknown)
            throw new InvalidOperationException(
                $"{DisplayPath(path)}: ONNX value '{unknown.Name}' has no known shape, so nothing computed from it can be evaluated; " +
                "pass evaluate: to the OnnxGraph.Node that makes it.");
        var shapes = string.Join(", ", inputs.Select(i => i.ShapeText));
        var samples = Run(compute, [.. inputs.Select(i => i.Sample!)], module, path,
            $"fails on its input of shape {shapes}, computed from the input sample");
        var probes = Run(compute, [.. inputs.Select(i => i.Probe!)], module, path,
            $"works on the input sample (shape {shapes}) but fails when the dynamic axes have other sizes; " +
            "leave those axes out of OnnxExportOptions.DynamicAxes");
        if (samples.Count != outputCount || probes.Count != outputCount)
            throw new InvalidOperationException($"{DisplayPath(path)}: evaluate returned {samples.Count} tensors for {outputCount} outputs.");
        return (samples, probes);
    }

    private static IReadOnlyList<Tensor> Run(Func<IReadOnlyList<Tensor>, IReadOnlyList<Tensor>> compute, Tensor[] inputs,
        nn.Module module, string path, string what)
    {
        try
        {
            return compute(inputs);
        }
        catch (Exception error) when (error is ExternalException or ArgumentException)
        {
            throw new ArgumentException(
                $"Cannot export: {DisplayPath(path)} ({module.GetType().Name}) {what}: {FirstLine(error.Message)}", "inputSample", error);
        }
    }

    /// <summary>Adds a graph input holding <paramref name="sample"/>; <paramref name="dynamicAxes"/> name the axes whose size may vary.</summary>
    internal OnnxValue AddInput(string name, Tensor sample, IReadOnlyDictionary<int, string> dynamicAxes, IReadOnlyDictionary<string, int> growth)
    {
        if (!_names.Add(name)) throw new ArgumentException($"Two inputs are named '{name}'.", nameof(name));
        var probe = sample;
        foreach (var (axis, dimParam) in dynamicAxes.OrderBy(a => a.Key))
        {
            // The probe repeats the sample's own entries, so indices (an Embedding's input) stay in range.
            long size = sample.size(axis), longer = size + growth[dimParam];
            probe = probe.index_select(axis, arange(longer, ScalarType.Int64) % size);
            _dimParams[(size, longer)] = dimParam;
        }
        var value = new OnnxValue(name);
        value.SetSamples(sample, probe);
        _inputs.Add(value);
        return value;
    }

    internal GraphProto ToProto(string name, IReadOnlyList<OnnxValue> outputs, IReadOnlyList<string> outputNames)
    {
        var graph = new GraphProto { Name = name };
        var produced = _nodes.SelectMany(n => n.Outputs).ToHashSet();
        var named = new List<OnnxValue>();
        for (int i = 0; i < outputs.Count; i++)
        {
            var (output, outputName) = (outputs[i], outputNames[i]);
            if (!_names.Add(outputName))
                throw new ArgumentException($"Output name '{outputName}' is already used in the graph; choose another.", nameof(outputNames));
            if (produced.Contains(output) && !named.Contains(output))
            {
                output.Name = outputName;
                named.Add(output);
                continue;
            }
            // A graph input, a weight or a value already named as another output reaches the output through Identity.
            var copy = new OnnxValue(outputName);
            copy.SetSamples(output.Sample!, output.Probe!);
            _nodes.Add(new NodeRecord("Identity", $"/{outputName}/Identity", [output], [copy], new Dictionary<string, object>()));
            named.Add(copy);
        }

        graph.Input.AddRange(_inputs.Select(ValueInfo));
        graph.Initializer.AddRange(_initializers);
        graph.Node.AddRange(_nodes.Select(ToProto));
        graph.Output.AddRange(named.Select(ValueInfo));
        return graph;
    }

    private ValueInfoProto ValueInfo(OnnxValue value)
    {
        var shape = new TensorShapeProto();
        for (int i = 0; i < value.Rank; i++)
        {
            var pair = (value.Sample!.size(i), value.Probe!.size(i));
            if (pair.Item1 == pair.Item2)
            {
                shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimValue = pair.Item1 });
                continue;
            }
            if (!_dimParams.TryGetValue(pair, out var dimParam))
                _dimParams[pair] = dimParam = $"{value.Name}_dim_{i}";
            shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimParam = dimParam });
        }
        return new ValueInfoProto
        {
            Name = value.Name,
            Type = new TypeProto
            {
                TensorType = new TypeProto.Types.Tensor { ElemType = (int)ElementTypeOf(value.ElementType, value.Name), Shape = shape },
            },
        };
    }

    private static NodeProto ToProto(NodeRecord node)
    {
        var proto = new NodeProto { OpType = node.OpType, Name = node.Name };
        int present = node.Inputs.Length;
        while (present > 0 && node.Inputs[present - 1] is null) present--;
        proto.Input.AddRange(node.Inputs.Take(present).Select(i => i?.Name ?? ""));
        proto.Output.AddRange(node.Outputs.Select(o => o.Name));
        foreach (var (name, value) in node.Attributes.OrderBy(a => a.Key, StringComparer.Ordinal))
            proto.Attribute.Add(Attribute(node, name, value));
        return proto;
    }

    private static AttributeProto Attribute(NodeRecord node, string name, object value)
    {
        var attribute = new AttributeProto { Name = name };
        switch (value)
        {
            case long or int or bool:
                attribute.Type = AttributeProto.Types.AttributeType.Int;
                attribute.I = value is bool b ? (b ? 1 : 0) : Convert.ToInt64(value);
                break;
            case float or double:
                attribute.Type = AttributeProto.Types.AttributeType.Float;
                attribute.F = Convert.ToSingle(value);
                break;
            case string s:
                attribute.Type = AttributeProto.Types.AttributeType.String;
                attribute.S = ByteString.CopyFromUtf8(s);
                break;
            case long[] ints:
                attribute.Type = AttributeProto.Types.AttributeType.Ints;
                attribute.Ints.AddRange(ints);
                break;
            case float[] floats:
                attribute.Type = AttributeProto.Types.AttributeType.Floats;
                attribute.Floats.AddRange(floats);
                break;
            case Tensor t:
                var data = t.detach().cpu().contiguous();
                attribute.Type = AttributeProto.Types.AttributeType.Tensor;
                attribute.T = new TensorProto { DataType = (int)ElementTypeOf(data.dtype, name), RawData = ByteString.CopyFrom(data.bytes) };
                attribute.T.Dims.AddRange(data.shape);
                break;
            default:
                throw new ArgumentException(
                    $"Attribute '{name}' of node {node.Name} is a {value.GetType().Name}; use long, int, bool, float, double, string, long[], float[] or Tensor.");
        }
        return attribute;
    }

    internal static TensorProto.Types.DataType ElementTypeOf(ScalarType type, string what) => type switch
    {
        ScalarType.Float32 => TensorProto.Types.DataType.Float,
        ScalarType.Float64 => TensorProto.Types.DataType.Double,
        ScalarType.Float16 => TensorProto.Types.DataType.Float16,
        ScalarType.BFloat16 => TensorProto.Types.DataType.Bfloat16,
        ScalarType.Int64 => TensorProto.Types.DataType.Int64,
        ScalarType.Int32 => TensorProto.Types.DataType.Int32,
        ScalarType.Int16 => TensorProto.Types.DataType.Int16,
        ScalarType.Int8 => TensorProto.Types.DataType.Int8,
        ScalarType.Byte => TensorProto.Types.DataType.Uint8,
        ScalarType.Bool => TensorProto.Types.DataType.Bool,
        _ => throw new NotSupportedException($"'{what}' has element type {type}, which ONNX export does not support."),
    };

    private string PathOf(nn.Module module)
    {
        var (scope, path) = _scopes.Peek();
        if (ReferenceEquals(scope, module)) return path;
        var name = scope.named_modules().FirstOrDefault(m => ReferenceEquals(m.module, module)).name ?? module.GetName();
        return path.Length == 0 ? name : $"{path}.{name}";
    }

    private static NotSupportedException Unsupported(nn.Module module, string path)
    {
        var type = module.GetType().Name;
        var how = module is LightningModule
            ? $"{type} is a LightningModule, which has no forward the exporter can follow: implement {nameof(IOnnxExportable)} on it " +
              "(e.g. ExportOnnx(graph, inputs) => [graph.Call(encoder, inputs[0])]), or export the nn.Module that does the work"
            : module is nn.Module<Tensor, Tensor>
                ? $"the exporter has no converter for {type}. Make it exportable by implementing Lightning.Onnx.{nameof(IOnnxExportable)} " +
                  $"on {type} (describe its forward with the OnnxGraph builder), or register a converter with OnnxConverters.Register<{type}>(...)"
                : $"{type} has no single-tensor forward; call its items from the parent's {nameof(IOnnxExportable)}.ExportOnnx, " +
                  $"or register a converter with OnnxConverters.Register<{type}>(...)";
        return new NotSupportedException($"Cannot export {DisplayPath(path)} ({type}) to ONNX: {how}.");
    }

    internal static string DisplayPath(string path) => path.Length == 0 ? "the exported module" : $"'{path}'";

    private static string FirstLine(string message) => message.Split('\n', 2)[0].Trim();

    private string UniqueName(string name)
    {
        if (_names.Add(name)) return name;
        for (int i = 1; ; i++)
            if (_names.Add($"{name}_{i}")) return $"{name}_{i}";
    }

    private sealed record NodeRecord(string OpType, string Name, OnnxValue?[] Inputs, OnnxValue[] Outputs,
        IReadOnlyDictionary<string, object> Attributes);
}
