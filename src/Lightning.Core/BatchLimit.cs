namespace Lightning;

/// <summary>
/// How many batches of a data loader to use: a count (<c>100</c>) or a fraction of the loader (<c>0.25</c>),
/// as Lightning's <c>limit_*_batches</c> flags. An <see cref="int"/> converts to a count, a <see cref="double"/>
/// to a fraction.
/// </summary>
public readonly record struct BatchLimit
{
    private BatchLimit(int? count, double? fraction) => (Count, Fraction) = (count, fraction);

    /// <summary>The number of batches, when the limit is a count.</summary>
    public int? Count { get; }

    /// <summary>The share of the loader's batches, when the limit is a fraction.</summary>
    public double? Fraction { get; }

    /// <summary>Every batch of the loader.</summary>
    public static BatchLimit All { get; } = new(null, 1.0);

    /// <summary>A limit of <paramref name="count"/> batches.</summary>
    public static implicit operator BatchLimit(int count) => new(count, null);

    /// <summary>A limit of <paramref name="fraction"/> of the loader's batches.</summary>
    public static implicit operator BatchLimit(double fraction) => new(null, fraction);

    internal void Validate(string optionName)
    {
        if (Count is < 0)
            throw new ArgumentOutOfRangeException(optionName, Count,
                $"{optionName} = {Count} is not allowed: a batch count must be 0 or more.");
        if (Fraction is { } f && (double.IsNaN(f) || f < 0 || f > 1))
            throw new ArgumentOutOfRangeException(optionName, f,
                $"{optionName} = {f} is not allowed: a fraction must be between 0.0 and 1.0 (use an int for a batch count).");
    }

    /// <summary>The number of batches to run from a loader of <paramref name="available"/> batches (null: unknown length).</summary>
    internal int? Resolve(long? available, string optionName)
    {
        if (Count is { } count) return available is { } a ? (int)Math.Min(count, a) : count;
        if (Fraction == 1.0) return available is { } n ? (int)n : null;
        if (available is not { } total)
            throw new InvalidOperationException(
                $"{optionName} = {Fraction} needs a data loader whose length is known; pass a batch count instead.");
        return (int)(total * Fraction!.Value);
    }

    /// <inheritdoc />
    public override string ToString() => Count is { } c ? c.ToString() : Fraction!.Value.ToString("R");
}
