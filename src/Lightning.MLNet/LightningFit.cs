using Lightning.Onnx;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.Runtime;
using Microsoft.ML.Transforms;
using Microsoft.ML.Transforms.Image;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.MLNet;

/// <summary>What the regression, binary and multiclass trainers share: read, train, export, wrap in OnnxTransformer.</summary>
internal static class LightningFit
{
    public const string ScoreColumnName = "Score";
    public const string ProbabilityColumnName = "Probability";
    public const string PredictedLabelColumnName = "PredictedLabel";

    /// <summary>The model's output columns for <paramref name="task"/>, in the order the exported graph returns them.</summary>
    public static string[] OutputNames(HeadKind task) => task switch
    {
        HeadKind.Multiclass => [ScoreColumnName, PredictedLabelColumnName],
        HeadKind.Binary => [ScoreColumnName, ProbabilityColumnName, PredictedLabelColumnName],
        _ => [ScoreColumnName],
    };

    public static LightningTransformer Fit(Func<LightningModule<IList<Tensor>>> moduleFactory, LightningTrainerOptions options,
        IDataView data, HeadKind task, MLContextLink context)
    {
        ArgumentNullException.ThrowIfNull(data);
        var inputs = SchemaChecks.CheckInputs(data.Schema, options.InputColumnNames, options.MaxLength);
        var classCount = SchemaChecks.CheckLabel(data.Schema, options.LabelColumnName, task);
        if (options.ValidationData is { } validation)
        {
            SchemaChecks.CheckInputs(validation.Schema, inputs);
            if (SchemaChecks.CheckLabel(validation.Schema, options.LabelColumnName, task) != classCount)
                throw SchemaChecks.Mismatch(options.LabelColumnName, $"Key<UInt32, 0-{classCount - 1}> as in the training data",
                    validation.Schema[options.LabelColumnName].Type.ToString()!);
        }

        options.CancellationToken.ThrowIfCancellationRequested();
        using var train = DataViewTable.Read(WithDerivedColumns(data, inputs), inputs, options.LabelColumnName, task);
        if (train.Rows == 0)
            throw new ArgumentException($"The training data has no rows with a label in column '{options.LabelColumnName}'.", nameof(data));
        using var val = options.ValidationData is { } v ? DataViewTable.Read(WithDerivedColumns(v, inputs), inputs, options.LabelColumnName, task) : null;

        using var channel = context.Start("Lightning");
        var log = channel is null ? null : new MLContextLogCallback(channel);
        var trainerOptions = TrainerOptionsFor(options, context, log);

        manual_seed(options.Seed);
        var module = moduleFactory() ?? throw new InvalidOperationException("The module factory returned null.");
        if (module is not IOnnxExportable)
            throw new InvalidOperationException(
                $"{module.GetType().Name} does not implement {nameof(IOnnxExportable)}; the Lightning trainers export the trained module to ONNX, " +
                "so its ExportOnnx must describe its forward from the input columns ([batch, F] each) to scores.");

        log?.Info(FormattableString.Invariant(
            $"training {module.GetType().Name} ({task}) on {train.Rows} rows of {string.Join(", ", inputs.Select(i => $"{i.Name} ({i.Type})"))}, batch size {options.BatchSize}, accelerator {trainerOptions.Accelerator}"));
        var trainer = new Trainer(trainerOptions);
        trainer.Fit(module, train.Batches(options.BatchSize, new Random(options.Seed)), val?.Batches(options.BatchSize, null));
        // Exported on the CPU (the export sample is a CPU tensor), whatever device it trained on.
        module.cpu();

        options.CancellationToken.ThrowIfCancellationRequested();
        var label = data.Schema[options.LabelColumnName];
        return Wrap(module, ownsModule: true, task, classCount, data, inputs, OutputNames(task),
            options.TransformBatchSize, options.Seed, trainer.CheckpointCallback?.BestModelPath, context,
            task == HeadKind.Multiclass ? mlContext => LabelValueMapping(mlContext, label, classCount) ?? ClassNumberMapping(mlContext, classCount) : null);
    }

    /// <summary>
    /// The Core trainer's options for this fit: the user's, plus the log callback, and the device that the context's
    /// <c>GpuDeviceId</c> asks for (the CPU, with a log line, when CUDA is missing and <c>FallbackToCpu</c> is true).
    /// </summary>
    private static TrainerOptions TrainerOptionsFor(LightningTrainerOptions options, MLContextLink context, MLContextLogCallback? log)
    {
        var trainerOptions = options.ResolvedTrainerOptions;
        if (log is not null) trainerOptions = trainerOptions with { Callbacks = [.. trainerOptions.Callbacks, log] };
        if (context.GpuDeviceId is not { } device) return trainerOptions;
        if (device < 0)
            throw new ArgumentOutOfRangeException(nameof(MLContext.GpuDeviceId), device, $"MLContext.GpuDeviceId is {device}; it must be a CUDA device index (0 or more) or null.");
        int available = cuda.is_available() ? cuda.device_count() : 0;
        if (device < available) return trainerOptions with { Accelerator = "cuda", Devices = new[] { device } };
        var missing = available == 0 ? "TorchSharp finds no CUDA device (a CPU build of libtorch, or no GPU)"
            : $"TorchSharp finds {available} CUDA device(s), 0 to {available - 1}";
        if (!context.FallbackToCpu)
            throw new InvalidOperationException(
                $"MLContext.GpuDeviceId is {device}, but {missing}. Set MLContext.FallbackToCpu = true to train on the CPU instead, or GpuDeviceId = null.");
        log?.Info($"MLContext.GpuDeviceId is {device}, but {missing}; training on the CPU, as MLContext.FallbackToCpu is true.");
        return trainerOptions with { Accelerator = "cpu", Devices = 1 };
    }

    /// <summary>The class number 1..K as a key of K values (the number itself as the key value).</summary>
    private static IEstimator<ITransformer> ClassNumberMapping(MLContext mlContext, int classCount) =>
        mlContext.Transforms.Conversion.MapValueToKey(PredictedLabelColumnName, PredictedLabelColumnName,
            keyOrdinality: ValueToKeyMappingEstimator.KeyOrdinality.ByOccurrence, keyData: ClassKeys(mlContext, classCount));

    /// <summary>
    /// Exports <paramref name="module"/> twice (one row per call for OnnxTransformer and the saved model; a batch axis
    /// for <see cref="LightningTransformer.Transform"/>) and wraps it: the derived columns (image pixels, key indicators), OnnxTransformer, then
    /// (trainers) the scalar outputs and <paramref name="rest"/>; the portable model is the same without the scalar outputs.
    /// </summary>
    public static LightningTransformer Wrap(nn.Module module, bool ownsModule, HeadKind kind, int classCount, IDataView data,
        IReadOnlyList<InputColumn> inputs, string[] outputNames, int transformBatchSize, int seed, string? checkpointPath,
        MLContextLink context, Func<MLContext, IEstimator<ITransformer>>? rest)
    {
        var rowModel = Export(new PredictionHead(module, kind, classCount, inputs, batched: false), inputs, batched: false, outputNames);
        var batchedModel = Export(new PredictionHead(module, kind, classCount, inputs, batched: true), inputs, batched: true, outputNames);
        // OnnxTransformer copies a model stream to a file under TempFilePath and never deletes it; a folder of this
        // model's own, removed when the transformer is disposed, keeps that file from leaking.
        var tempDirectory = Directory.CreateTempSubdirectory("lightning-mlnet-").FullName;
        var mlContext = new MLContext(seed) { TempFilePath = tempDirectory, GpuDeviceId = ScoringDevice(context), FallbackToCpu = context.FallbackToCpu };
        var keys = DerivedColumns(mlContext, inputs)?.Fit(data);
        var keyed = keys?.Transform(data) ?? data;
        var onnx = mlContext.Transforms.ApplyOnnxModel(outputNames, [.. inputs.Select(i => i.RowName)], new MemoryStream(rowModel)).Fit(keyed);
        var scored = onnx.Transform(keyed);
        var portableRest = rest?.Invoke(mlContext).Fit(scored);
        ITransformer? scalarRest = null;
        if (kind != HeadKind.Vector)
        {
            var scalars = ScalarOutputs.Estimator(mlContext, kind);
            scalarRest = (rest is null ? scalars : scalars.Append(rest(mlContext))).Fit(scored);
        }
        return new LightningTransformer(keys, onnx, scalarRest ?? portableRest, portableRest, rowModel, batchedModel, module, ownsModule,
            checkpointPath, inputs, classCount, transformBatchSize, tempDirectory);
    }

    /// <summary>
    /// The columns the graphs read in place of some inputs, made by ML.NET's own transforms (so the saved model stays
    /// ML.NET's): each image's pixels (<c>ExtractPixels</c>: red, green, blue planes, scaled to [0, 1]) and each key
    /// column's indicators (<c>MapKeyToVector</c>, for the per-row graph); null when no input needs one.
    /// </summary>
    private static IEstimator<ITransformer>? DerivedColumns(MLContext mlContext, IReadOnlyList<InputColumn> inputs)
    {
        IEstimator<ITransformer>? derived = null;
        foreach (var image in inputs.Where(i => i.IsImage))
            derived = Then(derived, mlContext.Transforms.ExtractPixels(image.ReadName, image.Name,
                ImagePixelExtractingEstimator.ColorBits.Rgb, ImagePixelExtractingEstimator.ColorsOrder.ARGB,
                interleavePixelColors: false, scaleImage: 1f / 255));
        var keys = inputs.Where(i => i.IsKey).Select(i => new InputOutputColumnPair(i.RowName, i.Name)).ToArray();
        if (keys.Length > 0) derived = Then(derived, mlContext.Transforms.Conversion.MapKeyToVector(keys));
        return derived;

        static IEstimator<ITransformer> Then(IEstimator<ITransformer>? first, IEstimator<ITransformer> next) =>
            first is null ? next : first.Append(next);
    }

    /// <summary><paramref name="data"/> with the columns the readers read (an image's pixels).</summary>
    private static IDataView WithDerivedColumns(IDataView data, IReadOnlyList<InputColumn> inputs) =>
        inputs.Any(i => i.IsImage) && DerivedColumns(new MLContext(), inputs) is { } derived ? derived.Fit(data).Transform(data) : data;

    /// <summary>
    /// The CUDA device OnnxTransformer scores on: the context's <c>GpuDeviceId</c> where ONNX Runtime has its CUDA
    /// provider; else the CPU (with a log line) when <c>FallbackToCpu</c> is true, or an error. (OnnxTransformer's own
    /// fallback misses a package built without the provider: it fails on the missing native entry point.)
    /// </summary>
    private static int? ScoringDevice(MLContextLink context)
    {
        if (context.GpuDeviceId is not { } device || OrtEnv.Instance().GetAvailableProviders().Contains("CUDAExecutionProvider"))
            return context.GpuDeviceId;
        var missing = $"MLContext.GpuDeviceId is {device}, but ONNX Runtime here has no CUDA execution provider (the CPU package Microsoft.ML.OnnxRuntime)";
        if (!context.FallbackToCpu)
            throw new InvalidOperationException($"{missing}. Set MLContext.FallbackToCpu = true to score on the CPU instead, or GpuDeviceId = null.");
        using var channel = context.Start("Lightning");
        channel?.Info(MessageSensitivity.None, $"{missing}; scoring on the CPU, as MLContext.FallbackToCpu is true.");
        return null;
    }

    /// <summary>
    /// The graph's bytes. Batched: one input per forward argument (<see cref="InputColumn.BatchedNames"/>) with a dynamic
    /// batch axis (and length axis, for variable-length columns without a MaxLength). Per row: one input per column
    /// (<see cref="InputColumn.RowName"/>), a variable-length one with a dynamic length.
    /// </summary>
    private static byte[] Export(PredictionHead head, IReadOnlyList<InputColumn> inputs, bool batched, string[] outputNames)
    {
        var path = Path.Combine(Path.GetTempPath(), $"lightning-mlnet-{Guid.NewGuid():N}.onnx");
        var samples = inputs.SelectMany(i => i.Samples(batched)).ToArray();
        try
        {
            var axes = new Dictionary<string, IReadOnlyDictionary<int, string>>();
            foreach (var (input, i) in inputs.Select((input, i) => (input, i)))
            {
                var dynamic = new Dictionary<int, string>();
                if (batched) dynamic[0] = "batch";
                if (input.Variable && (!batched || input.MaxLength is null)) dynamic[1] = $"length{i}";
                foreach (var name in batched ? input.BatchedNames : [input.RowName]) axes[name] = dynamic;
            }
            head.ToOnnx(path, samples, new OnnxExportOptions
            {
                DynamicAxes = axes,
                InputNames = [.. inputs.SelectMany(i => batched ? i.BatchedNames : [i.RowName])],
                OutputNames = outputNames,
            });
            return File.ReadAllBytes(path);
        }
        finally
        {
            foreach (var sample in samples) sample.Dispose();
            File.Delete(path);
        }
    }

    private sealed class ClassKey
    {
        public long PredictedLabel { get; set; }
    }

    /// <summary>
    /// When the label key carries its values (as after <c>MapValueToKey</c>), maps the one-based class index to a key
    /// whose values are the label's, in the label's order, so <c>MapKeyToValue</c> on PredictedLabel gives back the
    /// label's own values; null for other labels.
    /// </summary>
    private static IEstimator<ITransformer>? LabelValueMapping(MLContext mlContext, DataViewSchema.Column label, int classCount)
    {
        if (label.Annotations.Schema.GetColumnOrNull("KeyValues") is not { Type: VectorDataViewType { ItemType: var item, Size: var size } }
            || size != classCount)
            return null;
        return item.RawType switch
        {
            var t when t == typeof(ReadOnlyMemory<char>) => Map(KeyValues<ReadOnlyMemory<char>>(label).Select(v => v.ToString()).ToArray()),
            var t when t == typeof(float) => Map(KeyValues<float>(label)),
            var t when t == typeof(double) => Map(KeyValues<double>(label)),
            var t when t == typeof(int) => Map(KeyValues<int>(label)),
            var t when t == typeof(uint) => Map(KeyValues<uint>(label)),
            var t when t == typeof(long) => Map(KeyValues<long>(label)),
            var t when t == typeof(bool) => Map(KeyValues<bool>(label)),
            _ => null,
        };

        // Index to label value, then value to key with the label's values as key data in key order. (MapValue's own
        // treatValuesAsKeyType makes a Vector<UInt32>, not a key, from a vector column.)
        IEstimator<ITransformer> Map<T>(T[] values) =>
            mlContext.Transforms.Conversion.MapValue(PredictedLabelColumnName,
                    values.Select((value, i) => new KeyValuePair<long, T>(i + 1, value)), PredictedLabelColumnName)
                .Append(mlContext.Transforms.Conversion.MapValueToKey(PredictedLabelColumnName, PredictedLabelColumnName,
                    keyOrdinality: ValueToKeyMappingEstimator.KeyOrdinality.ByOccurrence,
                    keyData: mlContext.Data.LoadFromEnumerable(values.Select(v => new KeyRow<T> { Value = v }).ToList())));
    }

    private sealed class KeyRow<T>
    {
        public T Value { get; set; } = default!;
    }

    private static T[] KeyValues<T>(DataViewSchema.Column label)
    {
        var values = default(VBuffer<T>);
        label.GetKeyValues(ref values);
        return values.DenseValues().ToArray();
    }

    /// <summary>The one-based class indices 1..K in order, so that index k maps to key k.</summary>
    private static IDataView ClassKeys(MLContext mlContext, int classCount) =>
        mlContext.Data.LoadFromEnumerable(Enumerable.Range(1, classCount).Select(k => new ClassKey { PredictedLabel = k }).ToList());

    /// <summary>
    /// The estimators' output schema: the input plus the task's columns; SchemaShape keeps no vector sizes. SchemaShape
    /// columns cannot be made outside ML.NET, so ML.NET's own column copies describe them: a Score vector like the
    /// features (multiclass), Single scalars (regression Score, binary Score and Probability), the Boolean label (binary
    /// PredictedLabel) and the key label (multiclass PredictedLabel).
    /// </summary>
    public static SchemaShape OutputShape(SchemaShape input, LightningTrainerOptions options, HeadKind task)
    {
        ArgumentNullException.ThrowIfNull(input);
        SchemaChecks.CheckShape(input, options.InputColumnNames, options.LabelColumnName, task);
        var mlContext = new MLContext(options.Seed);
        IEstimator<ITransformer> describe = task switch
        {
            HeadKind.Multiclass => mlContext.Transforms.CopyColumns(ScoreColumnName, options.FeatureColumnName)
                .Append(mlContext.Transforms.CopyColumns(PredictedLabelColumnName, options.LabelColumnName)),
            HeadKind.Binary => mlContext.Transforms.Conversion.ConvertType(ScoreColumnName, options.LabelColumnName, DataKind.Single)
                .Append(mlContext.Transforms.Conversion.ConvertType(ProbabilityColumnName, options.LabelColumnName, DataKind.Single))
                .Append(mlContext.Transforms.CopyColumns(PredictedLabelColumnName, options.LabelColumnName)),
            _ => mlContext.Transforms.CopyColumns(ScoreColumnName, options.LabelColumnName),
        };
        return describe.GetOutputSchema(input);
    }
}
