using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Tokenizers;

namespace Lightning.MLNet;

/// <summary>
/// Tokenizes a text column with a Microsoft.ML.Tokenizers <see cref="Tokenizer"/> into token ids (Int64), ready for a
/// Lightning trainer: made by <c>mlContext.Transforms.TokenizeText(...)</c> (<see cref="LightningCatalog"/>).
/// </summary>
/// <remarks>
/// <list type="table">
/// <item><term>Does this estimator need to look at the data to train its parameters?</term><description>No.</description></item>
/// <item><term>Input column</term><description>Text (<c>ReadOnlyMemory&lt;char&gt;</c>).</description></item>
/// <item><term>Output columns</term><description>With a maximum length L: the ids, <c>Vector&lt;Int64, L&gt;</c>, cut to L
/// and padded with the padding id, and optionally the mask, <c>Vector&lt;Int64, L&gt;</c> (1 for a token, 0 for padding); give
/// both to a trainer's <c>FeatureColumnNames</c>. Without one: the ids, a variable-length <c>Vector&lt;Int64&gt;</c>, which a
/// trainer pads per batch and masks itself.</description></item>
/// <item><term>Saved with the model</term><description>No: a tokenizer has no ML.NET model format, so a chain holding this
/// transformer cannot be saved; save the model fitted after it and tokenize before scoring.</description></item>
/// </list>
/// </remarks>
public sealed class TokenizeTextEstimator : IEstimator<TokenizeTextTransformer>
{
    internal TokenizeTextEstimator(Tokenizer tokenizer, string outputColumnName, string inputColumnName, string? maskColumnName,
        int? maxLength, long paddingId)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        ArgumentException.ThrowIfNullOrWhiteSpace(outputColumnName);
        ArgumentException.ThrowIfNullOrWhiteSpace(inputColumnName);
        if (maxLength is < 1)
            throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, $"maxLength is {maxLength}; it must be at least 1, or null for variable-length ids.");
        if (maskColumnName is not null && maxLength is null)
            throw new ArgumentException(
                $"A mask column ('{maskColumnName}') needs a maxLength: without one the ids are a variable-length vector, which a Lightning trainer pads and masks per batch itself.",
                nameof(maskColumnName));
        if (maskColumnName == outputColumnName)
            throw new ArgumentException($"The mask column and the ids column are both '{maskColumnName}'.", nameof(maskColumnName));
        Transformer = new TokenizeTextTransformer(tokenizer, outputColumnName, inputColumnName, maskColumnName, maxLength, paddingId);
    }

    internal TokenizeTextTransformer Transformer { get; }

    /// <summary>Returns the transformer (tokenizing needs no training); checks that the input column is text.</summary>
    /// <param name="input">Data whose schema holds the text column (no rows are read).</param>
    public TokenizeTextTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        Transformer.GetOutputSchema(input.Schema);
        return Transformer;
    }

    /// <summary>The input columns plus the ids (and mask) columns, Int64 vectors.</summary>
    /// <param name="inputSchema">The input's schema shape.</param>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var input = inputSchema.FirstOrDefault(c => c.Name == Transformer.InputColumnName);
        if (input.Name is null)
            throw SchemaChecks.Missing(Transformer.InputColumnName, "Text");
        if (input.Kind != SchemaShape.Column.VectorKind.Scalar || input.ItemType != TextDataViewType.Instance)
            throw SchemaChecks.Mismatch(Transformer.InputColumnName, "Text", input.ItemType.ToString()!);
        // SchemaShape columns cannot be made outside ML.NET: ML.NET's own transforms describe the outputs, a known-size
        // (Concatenate) or variable-length (TokenizeIntoWords) vector of text converted to Int64.
        var mlContext = new MLContext();
        var ids = Transformer.MaxLength is null
            ? mlContext.Transforms.Text.TokenizeIntoWords(Transformer.OutputColumnName, Transformer.InputColumnName)
            : (IEstimator<ITransformer>)mlContext.Transforms.Concatenate(Transformer.OutputColumnName, Transformer.InputColumnName);
        IEstimator<ITransformer> describe = ids.Append(mlContext.Transforms.Conversion.ConvertType(Transformer.OutputColumnName, Transformer.OutputColumnName, DataKind.Int64));
        if (Transformer.MaskColumnName is { } mask)
            describe = describe.Append(mlContext.Transforms.CopyColumns(mask, Transformer.OutputColumnName));
        return describe.GetOutputSchema(inputSchema);
    }
}
