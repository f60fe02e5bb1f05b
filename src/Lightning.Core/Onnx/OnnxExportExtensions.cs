using System.Reflection;
using System.Text.Json;
using Google.Protobuf;
using Lightning.IO;
using Lightning.Onnx.Proto;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Onnx;

/// <summary>
/// ONNX export of TorchSharp modules and <see cref="LightningModule"/>s (Lightning's <c>to_onnx</c>). TorchSharp cannot
/// trace, so the exporter walks the module: containers and TorchSharp's layers through <see cref="OnnxConverters"/>,
/// other modules through <see cref="IOnnxExportable"/>.
/// </summary>
public static class OnnxExportExtensions
{
    private const string ProducerName = "Lightning.NET";

    /// <summary>
    /// Writes <paramref name="module"/>'s eval-mode forward as an ONNX model to <paramref name="path"/>: weights as
    /// initializers, a dynamic batch axis by default and, for a <see cref="LightningModule"/>, its hyperparameters as
    /// metadata. The module's training flags are restored afterwards. The file is written to a temporary name and
    /// renamed, so a failure never leaves a partial model.
    /// </summary>
    /// <param name="module">The module to export; a <see cref="LightningModule"/> must implement <see cref="IOnnxExportable"/>.</param>
    /// <param name="path">The <c>.onnx</c> file to write (replaced if it exists).</param>
    /// <param name="inputSample">An input the forward accepts; it fixes the rank, the element type and the non-dynamic sizes.</param>
    /// <param name="options">Opset, names and dynamic axes; null for the defaults.</param>
    /// <exception cref="ArgumentException">The sample does not fit the module, or an option is invalid.</exception>
    /// <exception cref="NotSupportedException">A module has no converter; the message names its path and type.</exception>
    public static void ToOnnx(this nn.Module module, string path, Tensor inputSample, OnnxExportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(inputSample);
        ToOnnx(module, path, [inputSample], options);
    }

    /// <summary>Writes a model whose forward takes several inputs; see <see cref="ToOnnx(nn.Module, string, Tensor, OnnxExportOptions?)"/>.</summary>
    /// <param name="module">The module to export.</param>
    /// <param name="path">The <c>.onnx</c> file to write (replaced if it exists).</param>
    /// <param name="inputSamples">One sample per forward input, in order.</param>
    /// <param name="options">Opset, names and dynamic axes; null for the defaults.</param>
    public static void ToOnnx(this nn.Module module, string path, IReadOnlyList<Tensor> inputSamples, OnnxExportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentNullException.ThrowIfNull(inputSamples);
        if (inputSamples.Count == 0 || inputSamples.Any(s => s is null))
            throw new ArgumentException("Give one non-null input sample per forward input.", nameof(inputSamples));
        options ??= new OnnxExportOptions();
        options.Validate([.. inputSamples.Select(s => s.shape)]);
        var destination = Path.GetFullPath(path);
        CheckDestination(destination);

        Write(Build(module, inputSamples, options), destination);
    }

    private static ModelProto Build(nn.Module module, IReadOnlyList<Tensor> inputSamples, OnnxExportOptions options)
    {
        // Each module's own flag, root first: train(bool) recurses, so restoring in this order leaves every flag as it was.
        var flags = module.modules().Prepend(module).Select(m => (Module: m, m.training)).ToList();
        module.eval();
        try
        {
            using var noGrad = no_grad();
            using var scope = NewDisposeScope();
            var graph = new OnnxGraph(options.Opset, module);
            var inputNames = options.ResolvedInputNames(inputSamples.Count);
            var dimParams = inputNames.SelectMany(options.DynamicAxesOf).Select(a => a.Value).Distinct().ToList();
            // Each dim_param grows by a different amount on the probe, so sizes that follow different axes stay apart.
            var growth = dimParams.Select((name, i) => (name, i)).ToDictionary(p => p.name, p => p.i + 1);
            var inputs = inputSamples.Select((sample, i) =>
                graph.AddInput(inputNames[i], sample.detach().cpu(), options.DynamicAxesOf(inputNames[i]), growth)).ToArray();

            var outputs = graph.Call(module, inputs);
            var outputNames = options.ResolvedOutputNames(outputs.Count);
            if (outputNames.Count != outputs.Count)
                throw new ArgumentException(
                    $"{nameof(OnnxExportOptions.OutputNames)} has {outputNames.Count} names, but the forward returns {outputs.Count} outputs.", "options");

            var model = new ModelProto
            {
                IrVersion = options.IrVersion,
                ProducerName = ProducerName,
                ProducerVersion = ProducerVersion(),
                Graph = graph.ToProto(module.GetName(), outputs, outputNames),
            };
            model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = options.Opset });
            model.MetadataProps.AddRange(Metadata(module, options).Select(p => new StringStringEntryProto { Key = p.Key, Value = p.Value }));
            return model;
        }
        finally
        {
            foreach (var (m, training) in flags) m.train(training);
        }
    }

    private static SortedDictionary<string, string> Metadata(nn.Module module, OnnxExportOptions options)
    {
        var metadata = new SortedDictionary<string, string>(StringComparer.Ordinal);
        if (module is LightningModule lightning)
            foreach (var (name, value) in lightning.Hparams)
                metadata[name] = value as string ?? JsonSerializer.Serialize(value);
        foreach (var (name, value) in options.Metadata ?? new Dictionary<string, string>())
            metadata[name] = value;
        return metadata;
    }

    private static void CheckDestination(string path)
    {
        if (Directory.Exists(path))
            throw new IOException($"Cannot write the ONNX model to '{path}': it is a directory.");
        var directory = Path.GetDirectoryName(path)!;
        if (!Directory.Exists(directory))
            throw new DirectoryNotFoundException($"Cannot write the ONNX model to '{path}': the folder '{directory}' does not exist.");
    }

    private static void Write(ModelProto model, string path)
    {
        try
        {
            DurableFile.Write(path, model.WriteTo);
        }
        catch (Exception error) when (error is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"Cannot write the ONNX model to '{path}': {error.Message}", error);
        }
    }

    private static string ProducerVersion()
    {
        var version = typeof(OnnxExportExtensions).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "";
        return version.Split('+')[0];
    }
}
