using Google.Protobuf;
using Lightning.Onnx.Proto;

namespace Lightning.Serving.Tests.Inference;

/// <summary>Small ONNX graphs written straight as protobuf, for datatypes and dim names that the exporter does not make.</summary>
internal static class OnnxGraphs
{
    /// <summary>ONNX element type numbers by v2 datatype.</summary>
    public static readonly Dictionary<string, TensorProto.Types.DataType> Types = new()
    {
        ["BOOL"] = TensorProto.Types.DataType.Bool,
        ["UINT8"] = TensorProto.Types.DataType.Uint8,
        ["UINT16"] = TensorProto.Types.DataType.Uint16,
        ["UINT32"] = TensorProto.Types.DataType.Uint32,
        ["UINT64"] = TensorProto.Types.DataType.Uint64,
        ["INT8"] = TensorProto.Types.DataType.Int8,
        ["INT16"] = TensorProto.Types.DataType.Int16,
        ["INT32"] = TensorProto.Types.DataType.Int32,
        ["INT64"] = TensorProto.Types.DataType.Int64,
        ["FP16"] = TensorProto.Types.DataType.Float16,
        ["BF16"] = TensorProto.Types.DataType.Bfloat16,
        ["FP32"] = TensorProto.Types.DataType.Float,
        ["FP64"] = TensorProto.Types.DataType.Double,
        ["BYTES"] = TensorProto.Types.DataType.String,
    };

    /// <summary><c>y = Identity(x)</c>, both <c>[batch, width]</c> of <paramref name="datatype"/>.</summary>
    public static string Identity(string path, string datatype, int width = 3) =>
        Write(path, Graph([Value("x", datatype, "batch", width)], [Value("y", datatype, "batch", width)], Node("Identity", ["x"], ["y"])));

    /// <summary><c>y = Identity(x)</c>, FP32 <c>[batch, width]</c> with both dims variable: requests of several widths can share a queue.</summary>
    public static string IdentityAnyWidth(string path) =>
        Write(path, Graph([Value("x", "FP32", "batch", 0, "width")], [Value("y", "FP32", "batch", 0, "width")], Node("Identity", ["x"], ["y"])));

    /// <summary><c>y = Identity(x)</c> and <c>z = Neg(x)</c>, FP32 <c>[batch, 2]</c>.</summary>
    public static string TwoOutputs(string path) =>
        Write(path, Graph([Value("x", "FP32", "batch", 2)], [Value("y", "FP32", "batch", 2), Value("z", "FP32", "batch", 2)],
            Node("Identity", ["x"], ["y"]), Node("Neg", ["x"], ["z"])));

    /// <summary><c>z = Add(x, y)</c>, FP32 <c>[batch, 2]</c> each: ONNX Runtime refuses rows that do not broadcast.</summary>
    public static string Sum(string path) =>
        Write(path, Graph([Value("x", "FP32", "batch", 2), Value("y", "FP32", "batch", 2)], [Value("z", "FP32", "batch", 2)], Node("Add", ["x", "y"], ["z"])));

    /// <summary>
    /// <c>y = CumSum(x, axis 0)</c>, FP32 <c>[n, 2]</c> → <c>[m, 2]</c>: dim 0 is variable on both sides but under different names,
    /// and the rows are not independent, so merging two requests would change both answers.
    /// </summary>
    public static string CumulativeRows(string path)
    {
        var axis = new TensorProto { Name = "axis", DataType = (int)TensorProto.Types.DataType.Int64 };
        axis.Int64Data.Add(0);
        var graph = Graph([Value("x", "FP32", "n", 2)], [Value("y", "FP32", "m", 2)], Node("CumSum", ["x", "axis"], ["y"]));
        graph.Initializer.Add(axis);
        return Write(path, graph);
    }

    /// <summary>
    /// <c>y = x · W₀ · W · W · …</c>: FP32 <c>[batch, 8]</c> → <c>[batch, width]</c> through <paramref name="depth"/> MatMul
    /// nodes of <c>width × width</c>, so a run of many rows takes long and ONNX Runtime can stop it between nodes.
    /// </summary>
    public static string MatMulChain(string path, int width, int depth)
    {
        var nodes = new List<NodeProto> { Node("MatMul", ["x", "w0"], ["h0"]) };
        for (int i = 1; i <= depth; i++) nodes.Add(Node("MatMul", ["h" + (i - 1), "w"], [i == depth ? "y" : "h" + i]));
        var graph = Graph([Value("x", "FP32", "batch", 8)], [Value("y", "FP32", "batch", width)], [.. nodes]);
        graph.Initializer.Add(Filled("w0", [8, width], 1f / 8));
        graph.Initializer.Add(Filled("w", [width, width], 1f / width));
        return Write(path, graph);
    }

    /// <summary>
    /// <c>y = Reshape(x, [-1, 3])</c>, FP32 <c>[batch, 2]</c> → <c>[rows, 3]</c>: only a multiple of 3 rows fits, which
    /// the signature cannot say, so ONNX Runtime fails while running on other row counts.
    /// </summary>
    public static string ReshapeToThrees(string path)
    {
        var shape = new TensorProto { Name = "shape", DataType = (int)TensorProto.Types.DataType.Int64 };
        shape.Dims.Add(2);
        shape.Int64Data.Add([-1, 3]);
        var graph = Graph([Value("x", "FP32", "batch", 2)], [Value("y", "FP32", "rows", 3)], Node("Reshape", ["x", "shape"], ["y"]));
        graph.Initializer.Add(shape);
        return Write(path, graph);
    }

    private static TensorProto Filled(string name, long[] dims, float value)
    {
        var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
        tensor.Dims.Add(dims);
        tensor.FloatData.Add(Enumerable.Repeat(value, (int)dims.Aggregate(1L, (a, b) => a * b)));
        return tensor;
    }

    private static GraphProto Graph(ValueInfoProto[] inputs, ValueInfoProto[] outputs, params NodeProto[] nodes)
    {
        var graph = new GraphProto { Name = "test" };
        graph.Input.AddRange(inputs);
        graph.Output.AddRange(outputs);
        graph.Node.AddRange(nodes);
        return graph;
    }

    private static NodeProto Node(string op, string[] inputs, string[] outputs)
    {
        var node = new NodeProto { OpType = op, Name = op + "_" + outputs[0] };
        node.Input.AddRange(inputs);
        node.Output.AddRange(outputs);
        return node;
    }

    private static ValueInfoProto Value(string name, string datatype, string batchName, int width, string? widthName = null)
    {
        var shape = new TensorShapeProto();
        shape.Dim.Add(new TensorShapeProto.Types.Dimension { DimParam = batchName });
        shape.Dim.Add(widthName is null ? new TensorShapeProto.Types.Dimension { DimValue = width } : new TensorShapeProto.Types.Dimension { DimParam = widthName });
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)Types[datatype], Shape = shape } },
        };
    }

    private static string Write(string path, GraphProto graph)
    {
        var model = new ModelProto { IrVersion = 8, ProducerName = "lightning-serving-tests", Graph = graph };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = 17 });
        File.WriteAllBytes(path, model.ToByteArray());
        return path;
    }
}
