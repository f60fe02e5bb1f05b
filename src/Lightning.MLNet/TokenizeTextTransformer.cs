using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Tokenizers;

namespace Lightning.MLNet;

/// <summary>
/// Adds the token ids (and mask) of a text column, lazily, as ML.NET's transforms do; see <see cref="TokenizeTextEstimator"/>.
/// Not saved with the model: a tokenizer has no ML.NET model format.
/// </summary>
public sealed class TokenizeTextTransformer : ITransformer
{
    private readonly Tokenizer _tokenizer;

    internal TokenizeTextTransformer(Tokenizer tokenizer, string outputColumnName, string inputColumnName, string? maskColumnName,
        int? maxLength, long paddingId)
    {
        _tokenizer = tokenizer;
        OutputColumnName = outputColumnName;
        InputColumnName = inputColumnName;
        MaskColumnName = maskColumnName;
        MaxLength = maxLength;
        PaddingId = paddingId;
    }

    /// <summary>The ids column.</summary>
    public string OutputColumnName { get; }

    /// <summary>The text column.</summary>
    public string InputColumnName { get; }

    /// <summary>The mask column, or null.</summary>
    public string? MaskColumnName { get; }

    /// <summary>The ids per row (cut to it, padded to it), or null for variable-length ids.</summary>
    public int? MaxLength { get; }

    /// <summary>The id padding takes.</summary>
    public long PaddingId { get; }

    /// <summary>False: it adds columns to a data view, but has no row-to-row mapper (so no prediction engine over it).</summary>
    public bool IsRowToRowMapper => false;

    /// <summary>The input schema plus the ids (and mask) columns.</summary>
    /// <param name="inputSchema">The input's schema; it must hold the text column.</param>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        var input = inputSchema.GetColumnOrNull(InputColumnName) ?? throw SchemaChecks.Missing(InputColumnName, "Text");
        if (input.Type != TextDataViewType.Instance)
            throw SchemaChecks.Mismatch(InputColumnName, "Text", input.Type.ToString()!);
        var builder = new DataViewSchema.Builder();
        builder.AddColumns(inputSchema);
        var ids = new VectorDataViewType(NumberDataViewType.Int64, MaxLength ?? 0);
        builder.AddColumn(OutputColumnName, ids);
        if (MaskColumnName is not null) builder.AddColumn(MaskColumnName, ids);
        return builder.ToSchema();
    }

    /// <summary>Not available: the transformer maps whole data views.</summary>
    /// <param name="inputSchema">The input's schema.</param>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) =>
        throw new NotSupportedException("TokenizeText has no row-to-row mapper; tokenize with Transform, then use the model fitted after it.");

    /// <summary>Adds the ids (and mask) of each row's text.</summary>
    /// <param name="input">The rows.</param>
    public IDataView Transform(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return new TokenizedDataView(input, GetOutputSchema(input.Schema), this);
    }

    /// <summary>Not available: a tokenizer has no ML.NET model format.</summary>
    /// <param name="ctx">ML.NET's save context.</param>
    void ICanSaveModel.Save(ModelSaveContext ctx) =>
        throw new NotSupportedException(
            "TokenizeText cannot be saved in an ML.NET model: a Microsoft.ML.Tokenizers tokenizer has no ML.NET model format. Save the model fitted after it, and tokenize the text before scoring.");

    /// <summary>Writes the ids of <paramref name="text"/> into <paramref name="ids"/> (and the mask), as the output columns hold them.</summary>
    internal void Encode(ReadOnlyMemory<char> text, ref VBuffer<long> ids, ref VBuffer<long> mask, bool withMask)
    {
        var tokens = _tokenizer.EncodeToIds(text.Span);
        int count = MaxLength is { } max ? Math.Min(max, tokens.Count) : tokens.Count, length = MaxLength ?? count;
        var editor = VBufferEditor.Create(ref ids, length);
        for (int i = 0; i < length; i++) editor.Values[i] = i < count ? tokens[i] : PaddingId;
        ids = editor.Commit();
        if (!withMask) return;
        var maskEditor = VBufferEditor.Create(ref mask, length);
        for (int i = 0; i < length; i++) maskEditor.Values[i] = i < count ? 1 : 0;
        mask = maskEditor.Commit();
    }
}
