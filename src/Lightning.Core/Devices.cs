namespace Lightning;

/// <summary>
/// Which devices to run on (Lightning's <c>devices</c>): <c>"auto"</c>, a count (<c>2</c>), all (<c>-1</c>) or
/// specific indices (<c>new[] { 0, 2 }</c>). Ints, int arrays and the string "auto" convert implicitly.
/// </summary>
public readonly record struct Devices
{
    private Devices(int? count, int[]? ids) => (Count, Ids) = (count, ids);

    /// <summary>A number of devices, -1 for all; null with null <see cref="Ids"/> means "auto".</summary>
    public int? Count { get; }

    /// <summary>Specific device indices.</summary>
    public int[]? Ids { get; }

    /// <summary>One device, or every CUDA device when CUDA is chosen.</summary>
    public static Devices Auto { get; } = new(null, null);

    /// <summary>A number of devices (-1: all).</summary>
    public static implicit operator Devices(int count) => new(count, null);

    /// <summary>Specific device indices.</summary>
    public static implicit operator Devices(int[] ids) => new(null, ids ?? throw new ArgumentNullException(nameof(ids)));

    /// <summary>"auto".</summary>
    public static implicit operator Devices(string value) => value == "auto" ? Auto
        : throw new ArgumentOutOfRangeException(nameof(Devices), value, $"Devices = \"{value}\" is not allowed: use \"auto\", a count, -1 for all, or an array of indices.");

    /// <inheritdoc />
    public override string ToString() => Ids is { } ids ? $"[{string.Join(", ", ids)}]" : Count?.ToString() ?? "auto";
}
