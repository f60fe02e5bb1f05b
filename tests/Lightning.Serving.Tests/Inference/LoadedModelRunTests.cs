using Lightning.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Lightning.Serving.Tests.Inference;

/// <summary>A run whose outputs ONNX Runtime writes straight into managed arrays answers as a run on ONNX Runtime alone.</summary>
public sealed class LoadedModelRunTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(32)]
    public void Run_SharedBatchDim_OutputsSizedByTheRowsMatchTheReference(int rows)
    {
        var path = OnnxTestModels.Linear(_dir.Combine("linear.onnx"));
        using var model = LoadedModel.Load("linear", File.ReadAllBytes(path), new OnnxModelOptions(), NullLogger.Instance, 1);
        var data = Enumerable.Range(0, rows * 4).Select(i => (float)Math.Sin(i)).ToArray();

        var outputs = model.Run([new InferenceTensor("input", TensorElementType.Float, [rows, 4], data)]);

        var output = Assert.Single(outputs);
        Assert.Equal("output", output.Name);
        Assert.Equal([rows, 3L], output.Shape);
        Approx.AssertClose(OnnxTestModels.Reference(path, data, [rows, 4]), (float[])output.Data);
    }

    [Fact]
    public void Run_ThreeDimensionalOutput_SizedFromTheSignature()
    {
        var path = OnnxTestModels.Embedding(_dir.Combine("embedding.onnx"));
        using var model = LoadedModel.Load("embedding", File.ReadAllBytes(path), new OnnxModelOptions(), NullLogger.Instance, 1);
        long[] ids = [1, 2, 3, 4, 5, 9, 8, 7, 6, 0];

        var first = model.Run([new InferenceTensor("input", TensorElementType.Int64, [2, 5], ids)]);
        var single = model.Run([new InferenceTensor("input", TensorElementType.Int64, [1, 5], ids[5..])]);

        Assert.Equal([2L, 5, 3], first[0].Shape);
        Assert.Equal(((float[])first[0].Data)[15..], (float[])single[0].Data);
    }
}
