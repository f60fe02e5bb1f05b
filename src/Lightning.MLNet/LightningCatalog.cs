using Microsoft.ML;
using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Lightning.MLNet;

/// <summary>
/// Lightning on ML.NET's catalogs: the trainers <c>mlContext.Regression.Trainers.Lightning(...)</c>,
/// <c>mlContext.BinaryClassification.Trainers.Lightning(...)</c> and <c>mlContext.MulticlassClassification.Trainers.Lightning(...)</c>,
/// the transform <c>mlContext.Transforms.Lightning(...)</c>, and durable model saves <c>mlContext.Model.SaveDurably(...)</c>.
/// </summary>
/// <remarks>
/// A trainer's module factory is called once per <c>Fit</c>, so two fits give independent models. The module must implement
/// <see cref="Lightning.Onnx.IOnnxExportable"/>: the trained model is its ONNX export.
/// The trainers and the transform follow the catalog's <see cref="MLContext"/>: training progress (each epoch's step and
/// metrics) goes to <c>MLContext.Log</c>; with <c>MLContext.GpuDeviceId</c> set they train and score on that CUDA device,
/// and where it is missing they use the CPU (with a log line) when <c>MLContext.FallbackToCpu</c> is true, else fail.
/// </remarks>
public static class LightningCatalog
{
    /// <summary>A multiclass trainer for the module <paramref name="moduleFactory"/> makes, with default options.</summary>
    /// <param name="catalog">The multiclass trainers catalog.</param>
    /// <param name="moduleFactory">Makes a fresh module (features [batch, F] to class scores [batch, K]).</param>
    /// <param name="labelColumnName">The key label column.</param>
    /// <param name="featureColumnName">The feature column (known-size vector of Single).</param>
    public static LightningMulticlassTrainer Lightning(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        Func<LightningModule<IList<Tensor>>> moduleFactory, string labelColumnName = "Label", string featureColumnName = "Features") =>
        Lightning(catalog, moduleFactory, new LightningTrainerOptions { LabelColumnName = labelColumnName, FeatureColumnName = featureColumnName });

    /// <summary>A multiclass trainer for the module <paramref name="moduleFactory"/> makes.</summary>
    /// <param name="catalog">The multiclass trainers catalog.</param>
    /// <param name="moduleFactory">Makes a fresh module (features [batch, F] to class scores [batch, K]).</param>
    /// <param name="options">Columns, Trainer options, batch size, seed and validation data.</param>
    public static LightningMulticlassTrainer Lightning(this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        Func<LightningModule<IList<Tensor>>> moduleFactory, LightningTrainerOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new LightningMulticlassTrainer(moduleFactory, options, MLContextLink.Of(catalog));
    }

    /// <summary>A binary classification trainer for the module <paramref name="moduleFactory"/> makes, with default options.</summary>
    /// <param name="catalog">The binary classification trainers catalog.</param>
    /// <param name="moduleFactory">Makes a fresh module (features [batch, F] to one logit per row, [batch] or [batch, 1]).</param>
    /// <param name="labelColumnName">The label column (Boolean).</param>
    /// <param name="featureColumnName">The feature column (known-size vector of Single).</param>
    public static LightningBinaryTrainer Lightning(this BinaryClassificationCatalog.BinaryClassificationTrainers catalog,
        Func<LightningModule<IList<Tensor>>> moduleFactory, string labelColumnName = "Label", string featureColumnName = "Features") =>
        Lightning(catalog, moduleFactory, new LightningTrainerOptions { LabelColumnName = labelColumnName, FeatureColumnName = featureColumnName });

    /// <summary>A binary classification trainer for the module <paramref name="moduleFactory"/> makes.</summary>
    /// <param name="catalog">The binary classification trainers catalog.</param>
    /// <param name="moduleFactory">Makes a fresh module (features [batch, F] to one logit per row, [batch] or [batch, 1]).</param>
    /// <param name="options">Columns, Trainer options, batch size, seed and validation data.</param>
    public static LightningBinaryTrainer Lightning(this BinaryClassificationCatalog.BinaryClassificationTrainers catalog,
        Func<LightningModule<IList<Tensor>>> moduleFactory, LightningTrainerOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new LightningBinaryTrainer(moduleFactory, options, MLContextLink.Of(catalog));
    }

    /// <summary>A regression trainer for the module <paramref name="moduleFactory"/> makes, with default options.</summary>
    /// <param name="catalog">The regression trainers catalog.</param>
    /// <param name="moduleFactory">Makes a fresh module (features [batch, F] to [batch] or [batch, 1]).</param>
    /// <param name="labelColumnName">The label column (Single).</param>
    /// <param name="featureColumnName">The feature column (known-size vector of Single).</param>
    public static LightningRegressionTrainer Lightning(this RegressionCatalog.RegressionTrainers catalog,
        Func<LightningModule<IList<Tensor>>> moduleFactory, string labelColumnName = "Label", string featureColumnName = "Features") =>
        Lightning(catalog, moduleFactory, new LightningTrainerOptions { LabelColumnName = labelColumnName, FeatureColumnName = featureColumnName });

    /// <summary>A regression trainer for the module <paramref name="moduleFactory"/> makes.</summary>
    /// <param name="catalog">The regression trainers catalog.</param>
    /// <param name="moduleFactory">Makes a fresh module (features [batch, F] to [batch] or [batch, 1]).</param>
    /// <param name="options">Columns, Trainer options, batch size, seed and validation data.</param>
    public static LightningRegressionTrainer Lightning(this RegressionCatalog.RegressionTrainers catalog,
        Func<LightningModule<IList<Tensor>>> moduleFactory, LightningTrainerOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new LightningRegressionTrainer(moduleFactory, options, MLContextLink.Of(catalog));
    }

    /// <summary>Maps the vector column <paramref name="inputColumnName"/> through <paramref name="module"/> into <paramref name="outputColumnName"/>.</summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="module">A trained module (features [batch, F] to float32 [batch, …]), e.g. an autoencoder's encoder.</param>
    /// <param name="outputColumnName">The column to add: each row's output, flattened to a vector of Single.</param>
    /// <param name="inputColumnName">The known-size vector of Single the module reads; it must differ from the output column.</param>
    public static LightningTransformEstimator Lightning(this TransformsCatalog catalog, nn.Module module, string outputColumnName,
        string inputColumnName = "Features") =>
        Lightning(catalog, module, new LightningTransformOptions { OutputColumnName = outputColumnName, InputColumnName = inputColumnName });

    /// <summary>Maps a vector column through <paramref name="module"/>, as <paramref name="options"/> say.</summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="module">A trained module (features [batch, F] to float32 [batch, …]), e.g. an autoencoder's encoder.</param>
    /// <param name="options">The input and output columns and the rows per ONNX Runtime call.</param>
    public static LightningTransformEstimator Lightning(this TransformsCatalog catalog, nn.Module module, LightningTransformOptions options)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new LightningTransformEstimator(module, options, MLContextLink.Of(catalog));
    }

    /// <summary>
    /// Tokenizes the text column <paramref name="inputColumnName"/> with <paramref name="tokenizer"/> (Microsoft.ML.Tokenizers)
    /// into the Int64 ids column <paramref name="outputColumnName"/>, for a Lightning trainer's input columns.
    /// </summary>
    /// <param name="catalog">The transforms catalog.</param>
    /// <param name="tokenizer">The tokenizer, e.g. <c>BertTokenizer.Create(vocabFile)</c> or <c>TiktokenTokenizer.CreateForModel(...)</c>.</param>
    /// <param name="outputColumnName">The ids column: <c>Vector&lt;Int64, maxLength&gt;</c>, or a variable-length <c>Vector&lt;Int64&gt;</c> without <paramref name="maxLength"/>.</param>
    /// <param name="inputColumnName">The text column.</param>
    /// <param name="maskColumnName">With <paramref name="maxLength"/>, an optional mask column (1 = token, 0 = padding).</param>
    /// <param name="maxLength">Ids per row: longer texts are cut, shorter ones padded with <paramref name="paddingId"/>; null for variable-length ids.</param>
    /// <param name="paddingId">The id padding takes (the tokenizer's padding token, e.g. BERT's [PAD]).</param>
    public static TokenizeTextEstimator TokenizeText(this TransformsCatalog catalog, Microsoft.ML.Tokenizers.Tokenizer tokenizer,
        string outputColumnName, string inputColumnName, string? maskColumnName = null, int? maxLength = null, long paddingId = 0)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new TokenizeTextEstimator(tokenizer, outputColumnName, inputColumnName, maskColumnName, maxLength, paddingId);
    }

    /// <summary>
    /// Saves <paramref name="model"/> as <c>mlContext.Model.Save</c> does, but durably: into a temporary file that is
    /// flushed to disk and then renamed over <paramref name="filePath"/>, so a crash, a full disk or a power loss during the
    /// save keeps the previous model file intact.
    /// </summary>
    /// <param name="catalog">The model operations catalog (<c>mlContext.Model</c>).</param>
    /// <param name="model">The trained model.</param>
    /// <param name="inputSchema">The schema of the data the model reads.</param>
    /// <param name="filePath">The model file (<c>model.zip</c>) to write or replace.</param>
    /// <param name="portable">
    /// False: the model as it scores here; loading it needs this assembly registered
    /// (<c>mlContext.ComponentCatalog.RegisterAssembly(typeof(LightningCatalog).Assembly)</c>), as the Lightning trainers'
    /// scalar outputs are a CustomMapping of it. True: each Lightning model in it is saved as its
    /// <see cref="LightningTransformer.PortableModel"/> (one-slot vector outputs), so the file loads in a process that
    /// references only Microsoft.ML and Microsoft.ML.OnnxTransformer.
    /// </param>
    public static void SaveDurably(this ModelOperationsCatalog catalog, ITransformer model, DataViewSchema inputSchema, string filePath,
        bool portable = false)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrWhiteSpace(filePath);
        var saved = portable ? Portable(model) : model;
        global::Lightning.IO.DurableFile.Write(filePath, stream => catalog.Save(saved, inputSchema, stream));
    }

    /// <summary><paramref name="model"/> with each Lightning model in it (also inside chains) replaced by its portable form.</summary>
    private static ITransformer Portable(ITransformer model) => model switch
    {
        LightningTransformer lightning => lightning.PortableModel,
        // A TransformerChain<T> of any last transformer type, as an EstimatorChain's Fit makes it.
        IEnumerable<ITransformer> chain when model.GetType().IsGenericType && model.GetType().GetGenericTypeDefinition() == typeof(TransformerChain<>) =>
            new TransformerChain<ITransformer>([.. chain.Select(Portable)]),
        _ => model,
    };
}
