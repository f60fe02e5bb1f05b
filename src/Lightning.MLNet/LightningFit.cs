using Lightning.Onnx;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms;
using static TorchSharp.torch;

namespace Lightning.MLNet;

/// <summary>What the regression and multiclass trainers share: read, train, export, wrap in OnnxTransformer.</summary>
internal static class LightningFit
{
    public const string ScoreColumnName = "Score";
    public const string PredictedLabelColumnName = "PredictedLabel";

    public static LightningTransformer Fit(Func<LightningModule<IList<Tensor>>> moduleFactory, LightningTrainerOptions options,
        IDataView data, bool multiclass)
    {
        ArgumentNullException.ThrowIfNull(data);
        var featureCount = SchemaChecks.CheckFeatures(data.Schema, options.FeatureColumnName);
        var classCount = multiclass ? SchemaChecks.CheckKeyLabel(data.Schema, options.LabelColumnName) : 0;
        if (!multiclass) SchemaChecks.CheckFloatLabel(data.Schema, options.LabelColumnName);
        if (options.ValidationData is { } validation)
        {
            SchemaChecks.CheckFeatures(validation.Schema, options.FeatureColumnName, featureCount);
            if (multiclass && SchemaChecks.CheckKeyLabel(validation.Schema, options.LabelColumnName) != classCount)
                throw SchemaChecks.Mismatch(options.LabelColumnName, $"Key<UInt32, 0-{classCount - 1}> as in the training data",
                    validation.Schema[options.LabelColumnName].Type.ToString()!);
            if (!multiclass) SchemaChecks.CheckFloatLabel(validation.Schema, options.LabelColumnName);
        }

        options.CancellationToken.ThrowIfCancellationRequested();
        using var train = DataViewTable.Read(data, options.FeatureColumnName, featureCount, options.LabelColumnName, multiclass);
        if (train.Rows == 0)
            throw new ArgumentException($"The training data has no rows with a label in column '{options.LabelColumnName}'.", nameof(data));
        using var val = options.ValidationData is { } v
            ? DataViewTable.Read(v, options.FeatureColumnName, featureCount, options.LabelColumnName, multiclass) : null;

        manual_seed(options.Seed);
        var module = moduleFactory() ?? throw new InvalidOperationException("The module factory returned null.");
        if (module is not IOnnxExportable)
            throw new InvalidOperationException(
                $"{module.GetType().Name} does not implement {nameof(IOnnxExportable)}; the Lightning trainers export the trained module to ONNX, " +
                "so its ExportOnnx must describe its forward from features [batch, F] to scores.");

        var trainer = new Trainer(options.ResolvedTrainerOptions);
        trainer.Fit(module, train.Batches(options.BatchSize, new Random(options.Seed)), val?.Batches(options.BatchSize, null));

        options.CancellationToken.ThrowIfCancellationRequested();
        var label = data.Schema[options.LabelColumnName];
        return Wrap(module, ownsModule: true, multiclass ? HeadKind.Multiclass : HeadKind.Regression, classCount, data,
            options.FeatureColumnName, featureCount, multiclass ? [ScoreColumnName, PredictedLabelColumnName] : [ScoreColumnName],
            options.TransformBatchSize, options.Seed, trainer.CheckpointCallback?.BestModelPath,
            multiclass ? mlContext => LabelValueMapping(mlContext, label, classCount)
                ?? mlContext.Transforms.Conversion.MapValueToKey(PredictedLabelColumnName, PredictedLabelColumnName,
                    keyOrdinality: ValueToKeyMappingEstimator.KeyOrdinality.ByOccurrence, keyData: ClassKeys(mlContext, classCount))
            : null);
    }

    /// <summary>
    /// Exports <paramref name="module"/> twice (one row per call for OnnxTransformer and the saved model; a batch axis
    /// for <see cref="LightningTransformer.Transform"/>) and wraps it: OnnxTransformer, then <paramref name="rest"/>.
    /// </summary>
    public static LightningTransformer Wrap(nn.Module module, bool ownsModule, HeadKind kind, int classCount, IDataView data,
        string featureColumnName, int featureCount, string[] outputNames, int transformBatchSize, int seed, string? checkpointPath,
        Func<MLContext, IEstimator<ITransformer>>? rest)
    {
        var rowModel = Export(new PredictionHead(module, kind, classCount, batched: false), zeros(featureCount), featureColumnName,
            outputNames, new Dictionary<int, string>());
        var batchedModel = Export(new PredictionHead(module, kind, classCount, batched: true), zeros(1, featureCount), featureColumnName,
            outputNames, new Dictionary<int, string> { [0] = "batch" });
        // OnnxTransformer copies a model stream to a file under TempFilePath and never deletes it; a folder of this
        // model's own, removed when the transformer is disposed, keeps that file from leaking.
        var tempDirectory = Directory.CreateTempSubdirectory("lightning-mlnet-").FullName;
        var mlContext = new MLContext(seed) { TempFilePath = tempDirectory };
        var onnx = mlContext.Transforms.ApplyOnnxModel(outputNames, [featureColumnName], new MemoryStream(rowModel)).Fit(data);
        var after = rest?.Invoke(mlContext).Fit(onnx.Transform(data));
        return new LightningTransformer(onnx, after, rowModel, batchedModel, module, ownsModule, checkpointPath,
            featureColumnName, featureCount, classCount, transformBatchSize, tempDirectory);
    }

    private static byte[] Export(PredictionHead head, Tensor sample, string featureColumnName, string[] outputNames,
        IReadOnlyDictionary<int, string> dynamicAxes)
    {
        var path = Path.Combine(Path.GetTempPath(), $"lightning-mlnet-{Guid.NewGuid():N}.onnx");
        try
        {
            using (sample)
                head.ToOnnx(path, sample, new OnnxExportOptions
                {
                    DynamicAxes = new Dictionary<string, IReadOnlyDictionary<int, string>> { [featureColumnName] = dynamicAxes },
                    InputNames = [featureColumnName],
                    OutputNames = outputNames,
                });
            return File.ReadAllBytes(path);
        }
        finally
        {
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
    /// The estimators' output schema: the input plus Score (and PredictedLabel); SchemaShape keeps no vector sizes. SchemaShape columns cannot be made
    /// outside ML.NET, so ML.NET's own column copies describe them: Score like the features (multiclass, a vector of
    /// Single), PredictedLabel a one-slot vector of the key label (regression: Score a vector of the Single label).
    /// </summary>
    public static SchemaShape OutputShape(SchemaShape input, LightningTrainerOptions options, bool multiclass)
    {
        ArgumentNullException.ThrowIfNull(input);
        SchemaChecks.CheckShape(input, options.FeatureColumnName, options.LabelColumnName, multiclass);
        var mlContext = new MLContext(options.Seed);
        IEstimator<ITransformer> describe = multiclass
            ? mlContext.Transforms.CopyColumns(ScoreColumnName, options.FeatureColumnName)
                .Append(mlContext.Transforms.Conversion.ConvertType(PredictedLabelColumnName, options.LabelColumnName, DataKind.UInt32))
                .Append(mlContext.Transforms.Concatenate(PredictedLabelColumnName, PredictedLabelColumnName))
                .Append(mlContext.Transforms.Conversion.MapValueToKey(PredictedLabelColumnName))
            : mlContext.Transforms.Concatenate(ScoreColumnName, options.LabelColumnName);
        return describe.GetOutputSchema(input);
    }
}
