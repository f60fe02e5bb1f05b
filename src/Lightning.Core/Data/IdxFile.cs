using System.Buffers.Binary;
using System.IO.Compression;

namespace Lightning.Data;

/// <summary>
/// A file in the IDX format of MNIST and Fashion-MNIST: a magic number <c>0x00 0x00 type rank</c>, one big-endian
/// int32 per dimension, then the elements in row-major order. Files may be raw or gzip-compressed; compression is
/// recognised by the gzip magic bytes <c>1f 8b</c>, not by the file name. Only unsigned bytes (type <c>0x08</c>) are read.
/// </summary>
public sealed class IdxFile
{
    /// <summary>The element type code of unsigned bytes, the only type this reader supports.</summary>
    public const byte UnsignedByteType = 0x08;

    private const int BufferSize = 1 << 16;

    private IdxFile(string path, int[] dimensions, byte[] data) => (Path, Dimensions, Data) = (path, dimensions, data);

    /// <summary>The path the file was read from.</summary>
    public string Path { get; }

    /// <summary>The size of each dimension, outermost first (e.g. <c>[60000, 28, 28]</c> for the training images).</summary>
    public int[] Dimensions { get; }

    /// <summary>The elements in row-major order; as many bytes as the product of <see cref="Dimensions"/>.</summary>
    public byte[] Data { get; }

    /// <summary>The size of the first dimension: the number of items (images or labels) in the file.</summary>
    public int Count => Dimensions[0];

    /// <summary>
    /// Reads an IDX file of unsigned bytes, raw or gzip-compressed.
    /// </summary>
    /// <param name="path">The file to read.</param>
    /// <param name="expectedRank">
    /// The number of dimensions the file must have (1 for labels, 3 for images), or null to accept any.
    /// </param>
    /// <returns>The dimensions and the bytes of the file.</returns>
    /// <exception cref="InvalidDataException">
    /// The file is not an IDX file of unsigned bytes (of <paramref name="expectedRank"/> dimensions), is truncated or
    /// has bytes after the data its dimensions describe, or its gzip stream is corrupted. The message names the file.
    /// </exception>
    /// <exception cref="FileNotFoundException">The file does not exist.</exception>
    public static IdxFile Read(string path, int? expectedRank = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (expectedRank is < 1 or > 255)
            throw new ArgumentOutOfRangeException(nameof(expectedRank), expectedRank,
                $"expectedRank = {expectedRank} is not allowed: an IDX file has 1 to 255 dimensions.");

        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, BufferSize);
        Span<byte> signature = stackalloc byte[2];
        bool gzip = file.ReadAtLeast(signature, 2, throwOnEndOfStream: false) == 2 && signature[0] == 0x1f && signature[1] == 0x8b;
        file.Position = 0;
        using var stream = gzip ? new GZipStream(file, CompressionMode.Decompress, leaveOpen: true) : (Stream)file;
        string kind = gzip ? "gzip-compressed IDX file" : "IDX file";

        Span<byte> magic = stackalloc byte[4];
        int read = Fill(stream, magic, path);
        if (read < magic.Length)
            throw new InvalidDataException(
                $"IDX file '{path}' is truncated: it holds {read} byte(s){(gzip ? " after decompression" : "")}; " +
                "the header alone needs at least 8 (a 4-byte magic number and one 4-byte dimension).");
        uint magicNumber = BinaryPrimitives.ReadUInt32BigEndian(magic);
        if (magic[0] != 0 || magic[1] != 0 || magic[3] == 0 || TypeName(magic[2]) is null)
            throw new InvalidDataException(
                $"IDX file '{path}' has magic number 0x{magicNumber:X8}; expected 0x00000801 (labels) or 0x00000803 (images): " +
                "two zero bytes, the element type (0x08 = unsigned byte) and the number of dimensions (1 or more)." +
                (gzip ? "" : " Is it an IDX file at all?"));
        if (magic[2] != UnsignedByteType)
            throw new InvalidDataException(
                $"IDX file '{path}' has element type 0x{magic[2]:X2} ({TypeName(magic[2])}) in its magic number 0x{magicNumber:X8}; " +
                $"only 0x{UnsignedByteType:X2} (unsigned byte) is supported, as in MNIST and Fashion-MNIST.");
        int rank = magic[3];
        if (expectedRank is { } expected && rank != expected)
            throw new InvalidDataException(
                $"IDX file '{path}' has magic number 0x{magicNumber:X8}: {rank} dimension(s); expected 0x{0x800 + expected:X8}: " +
                $"{expected} dimension(s){RankRole(expected)}.");

        var header = new byte[rank * 4];
        read = Fill(stream, header, path);
        if (read < header.Length)
            throw new InvalidDataException(
                $"IDX file '{path}' is truncated: its magic number 0x{magicNumber:X8} announces {rank} dimension(s), " +
                $"which need {header.Length} header bytes after it; found {read}.");
        var dimensions = new int[rank];
        long size = 1;
        for (int i = 0; i < rank; i++)
        {
            dimensions[i] = BinaryPrimitives.ReadInt32BigEndian(header.AsSpan(i * 4));
            if (dimensions[i] < 0)
                throw new InvalidDataException(
                    $"IDX file '{path}' has dimension {i} = {dimensions[i]}; dimension sizes must be 0 or more " +
                    $"(read as big-endian int32).");
            size *= dimensions[i];
            if (size > Array.MaxLength)
                throw new InvalidDataException(
                    $"IDX file '{path}' has dimensions [{string.Join(", ", dimensions.Take(i + 1))}{(i + 1 < rank ? ", …" : "")}], " +
                    $"more than the {Array.MaxLength} elements one array can hold.");
        }

        var data = GC.AllocateUninitializedArray<byte>((int)size);
        read = Fill(stream, data, path);
        if (read < data.Length)
            throw new InvalidDataException(
                $"IDX file '{path}' is truncated: dimensions [{string.Join(", ", dimensions)}] need {data.Length} data bytes, " +
                $"found {read}{(gzip ? " after decompression" : "")}.");

        long trailing = CountRemaining(stream, path);
        if (trailing > 0)
            throw new InvalidDataException(
                $"IDX file '{path}' has {trailing} trailing byte(s) after the {data.Length} data bytes that dimensions " +
                $"[{string.Join(", ", dimensions)}] describe; expected the {kind} to end there.");
        return new IdxFile(path, dimensions, data);
    }

    /// <summary>Reads until <paramref name="buffer"/> is full or the stream ends; returns the bytes read.</summary>
    private static int Fill(Stream stream, Span<byte> buffer, string path)
    {
        try
        {
            return stream.ReadAtLeast(buffer, buffer.Length, throwOnEndOfStream: false);
        }
        catch (InvalidDataException e)
        {
            throw new InvalidDataException($"IDX file '{path}' starts like gzip (1f 8b) but cannot be decompressed: {e.Message}", e);
        }
    }

    private static long CountRemaining(Stream stream, string path)
    {
        var buffer = new byte[BufferSize];
        long total = 0;
        int read;
        while ((read = Fill(stream, buffer, path)) > 0) total += read;
        return total;
    }

    private static string RankRole(int rank) => rank switch
    {
        1 => " (labels: count)",
        3 => " (images: count, rows, columns)",
        _ => "",
    };

    /// <summary>The name of an IDX element type; null when <paramref name="type"/> is none.</summary>
    private static string? TypeName(byte type) => type switch
    {
        0x08 => "unsigned byte",
        0x09 => "signed byte",
        0x0B => "int16",
        0x0C => "int32",
        0x0D => "float32",
        0x0E => "float64",
        _ => null,
    };
}
