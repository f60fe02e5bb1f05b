using static TorchSharp.torch;

namespace Lightning.Onnx.Converters;

/// <summary>The converter families for TorchSharp's layers; a new family is added here, in this folder.</summary>
internal static class BuiltInConverters
{
    public static void Register(Action<Type, OnnxConverter<nn.Module>> add)
    {
        LayerConverters.Register(add);
        ActivationConverters.Register(add);
        NormalizationConverters.Register(add);
        PoolingConverters.Register(add);
        PaddingConverters.Register(add);
        ResamplingConverters.Register(add);
        PatchConverters.Register(add);
        EmbeddingConverters.Register(add);
        DistanceConverters.Register(add);
        RecurrentConverters.Register(add);
        RecurrentCellConverters.Register(add);
        AttentionConverters.Register(add);
    }
}
