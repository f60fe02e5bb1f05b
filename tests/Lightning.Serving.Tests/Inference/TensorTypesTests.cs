using Microsoft.ML.OnnxRuntime.Tensors;

namespace Lightning.Serving.Tests.Inference;

/// <summary>The v2 datatype names, ONNX element types and managed arrays map onto each other.</summary>
public sealed class TensorTypesTests
{
    [Fact]
    public void TensorTypes_NamesAndSupport_AgreeWithTheTables()
    {
        foreach (var type in Enum.GetValues<TensorElementType>())
        {
            var name = TensorTypes.ToV2(type);

            Assert.Equal(TensorTypes.SupportedDatatypes.Contains(name), TensorTypes.IsSupported(type));
            if (TensorTypes.TryFromV2(name, out var back)) Assert.Equal(type, back);
        }
        foreach (var name in TensorTypes.SupportedDatatypes)
            Assert.True(TensorTypes.TryFromV2(name, out var type) && TensorTypes.ToV2(type) == name, name);
    }

    [Fact]
    public void ToOrtValue_EveryDatatype_KeepsTheElementType()
    {
        foreach (var name in TensorTypes.SupportedDatatypes)
        {
            Assert.True(TensorTypes.TryFromV2(name, out var type));
            var tensor = new InferenceTensor("x", type, [2], TensorTypes.Allocate(type, 2));

            using var value = TensorTypes.ToOrtValue(tensor);

            Assert.Equal(type, value.GetTensorTypeAndShape().ElementDataType);
        }
    }
}
