using System.Collections.Concurrent;
using Lightning.Onnx.Converters;
using static TorchSharp.torch;

namespace Lightning.Onnx;

/// <summary>Turns one call of <paramref name="module"/> into ONNX nodes of <paramref name="graph"/> and returns its outputs.</summary>
/// <typeparam name="TModule">The module type the converter handles (and types derived from it).</typeparam>
public delegate IReadOnlyList<OnnxValue> OnnxConverter<in TModule>(TModule module, OnnxGraph graph, IReadOnlyList<OnnxValue> inputs)
    where TModule : nn.Module;

/// <summary>
/// The converters the exporter uses for module types that cannot implement <see cref="IOnnxExportable"/> themselves:
/// TorchSharp's layers (registered here at start) and any third-party type a user registers.
/// </summary>
public static class OnnxConverters
{
    private static readonly ConcurrentDictionary<Type, OnnxConverter<nn.Module>> s_converters = new();

    static OnnxConverters()
    {
        LayerConverters.Register(Add);
        ActivationConverters.Register(Add);
        RecurrentConverters.Register(Add);
        AttentionConverters.Register(Add);
    }

    /// <summary>
    /// Registers (or replaces) the converter for <typeparamref name="TModule"/>; it also handles derived types that
    /// have no converter of their own.
    /// </summary>
    public static void Register<TModule>(OnnxConverter<TModule> converter) where TModule : nn.Module
    {
        ArgumentNullException.ThrowIfNull(converter);
        Add(typeof(TModule), (module, graph, inputs) => converter((TModule)module, graph, inputs));
    }

    /// <summary>True when <paramref name="moduleType"/> or one of its base types has a converter.</summary>
    public static bool IsRegistered(Type moduleType) => Find(moduleType) is not null;

    internal static OnnxConverter<nn.Module>? Find(Type moduleType)
    {
        for (var type = moduleType; type is not null; type = type.BaseType)
            if (s_converters.TryGetValue(type, out var converter)) return converter;
        return null;
    }

    private static void Add(Type type, OnnxConverter<nn.Module> converter) => s_converters[type] = converter;
}
