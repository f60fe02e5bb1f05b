using System.Buffers.Binary;
using System.IO.Compression;
using Lightning.Data;
using Lightning.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Data;

/// <summary>Writes IDX files for tests.</summary>
internal static class Idx
{
    public static byte[] Encode(int[] dimensions, byte[] data, byte type = IdxFile.UnsignedByteType, byte[]? trailing = null)
    {
        using var stream = new MemoryStream();
        stream.Write([0, 0, type, (byte)dimensions.Length]);
        Span<byte> dim = stackalloc byte[4];
        foreach (var d in dimensions)
        {
            BinaryPrimitives.WriteInt32BigEndian(dim, d);
            stream.Write(dim);
        }
        stream.Write(data);
        if (trailing is not null) stream.Write(trailing);
        return stream.ToArray();
    }

    public static byte[] Gzip(byte[] bytes)
    {
        using var stream = new MemoryStream();
        using (var gzip = new GZipStream(stream, CompressionLevel.Fastest, leaveOpen: true)) gzip.Write(bytes);
        return stream.ToArray();
    }

    public static string Write(string path, byte[] bytes, bool gzip = false)
    {
        File.WriteAllBytes(path, gzip ? Gzip(bytes) : bytes);
        return path;
    }

    /// <summary>Random pixels and labels 0..9 for <paramref name="count"/> images of <paramref name="rows"/>×<paramref name="columns"/>.</summary>
    public static (byte[] Pixels, byte[] Labels) Random(int count, int rows, int columns, int seed)
    {
        var random = new Random(seed);
        var pixels = new byte[count * rows * columns];
        random.NextBytes(pixels);
        var labels = Enumerable.Range(0, count).Select(_ => (byte)random.Next(10)).ToArray();
        return (pixels, labels);
    }
}

public class IdxFileTests
{
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Read_RoundTripsDimensionsAndBytes(bool gzip)
    {
        using var temp = new TempDirectory();
        var (pixels, _) = Idx.Random(count: 5, rows: 3, columns: 4, seed: 1);
        // The name says nothing about compression: the reader must look at the bytes.
        var path = Idx.Write(temp.Combine("images.bin"), Idx.Encode([5, 3, 4], pixels), gzip);

        var file = IdxFile.Read(path, expectedRank: 3);

        Assert.Equal(path, file.Path);
        Assert.Equal(new[] { 5, 3, 4 }, file.Dimensions);
        Assert.Equal(5, file.Count);
        Assert.Equal(pixels, file.Data);
    }

    [Fact]
    public void Read_AcceptsAnyRankWhenNoneIsExpected()
    {
        using var temp = new TempDirectory();
        var data = Enumerable.Range(0, 2 * 3 * 2 * 2).Select(i => (byte)(i * 7)).ToArray();
        var path = Idx.Write(temp.Combine("four-d"), Idx.Encode([2, 3, 2, 2], data), gzip: true);

        var file = IdxFile.Read(path);

        Assert.Equal(new[] { 2, 3, 2, 2 }, file.Dimensions);
        Assert.Equal(data, file.Data);
    }

    [Fact]
    public void Read_EmptyDimensionGivesNoData()
    {
        using var temp = new TempDirectory();
        var path = Idx.Write(temp.Combine("labels"), Idx.Encode([0], []));

        var file = IdxFile.Read(path, expectedRank: 1);

        Assert.Equal(new[] { 0 }, file.Dimensions);
        Assert.Empty(file.Data);
    }

    public static TheoryData<string, bool, string[]> Corruptions => new()
    {
        // name, gzip, fragments the message must hold besides the path
        { "bad-magic", false, ["magic number 0x00000A03", "0x00000801", "0x00000803"] },
        { "bad-magic", true, ["magic number 0x00000A03", "0x00000801", "0x00000803"] },
        { "zero-rank", false, ["magic number 0x00000800", "0x00000803"] },
        { "float-type", false, ["element type 0x0D", "float32", "0x08 (unsigned byte)"] },
        { "float-type", true, ["element type 0x0D", "float32", "0x08 (unsigned byte)"] },
        { "wrong-rank", false, ["magic number 0x00000801", "expected 0x00000803"] },
        { "truncated-data", false, ["truncated", "[4, 3, 3]", "36", "35"] },
        { "truncated-data", true, ["truncated", "[4, 3, 3]", "36", "35"] },
        { "truncated-header", false, ["truncated", "12 header bytes", "found 6"] },
        { "too-short", false, ["truncated", "holds 3 byte(s)"] },
        { "trailing", false, ["2 trailing byte(s)", "36 data bytes", "[4, 3, 3]"] },
        { "trailing", true, ["2 trailing byte(s)", "36 data bytes", "[4, 3, 3]"] },
        { "negative-dimension", false, ["dimension 1 = -3"] },
        { "broken-gzip", false, ["cannot be decompressed"] },
    };

    [Theory]
    [MemberData(nameof(Corruptions))]
    public void Read_RejectsCorruptFilesNamingThePath(string corruption, bool gzip, string[] fragments)
    {
        using var temp = new TempDirectory();
        var data = Enumerable.Range(0, 36).Select(i => (byte)i).ToArray();
        var good = Idx.Encode([4, 3, 3], data);
        byte[] bytes = corruption switch
        {
            "bad-magic" => [0x00, 0x00, 0x0A, 0x03, .. good[4..]],
            "zero-rank" => [0x00, 0x00, 0x08, 0x00, .. good[4..]],
            "float-type" => Idx.Encode([4, 3, 3], data, type: 0x0D),
            "wrong-rank" => Idx.Encode([36], data),
            "truncated-data" => good[..^1],
            "truncated-header" => good[..10],
            "too-short" => good[..3],
            "trailing" => Idx.Encode([4, 3, 3], data, trailing: [1, 2]),
            "negative-dimension" => Idx.Encode([4, -3, 3], data),
            "broken-gzip" => [.. Idx.Gzip(good)[..10], .. Enumerable.Repeat((byte)0xFF, 64)],
            _ => throw new ArgumentException(corruption),
        };
        var path = Idx.Write(temp.Combine($"train-images-idx3-ubyte{(gzip ? ".gz" : "")}"), bytes, gzip);

        var error = Assert.Throws<InvalidDataException>(() => IdxFile.Read(path, expectedRank: 3));

        Assert.Contains($"'{path}'", error.Message);
        foreach (var fragment in fragments) Assert.Contains(fragment, error.Message);
        Assert.Equal(new[] { path }, Directory.GetFileSystemEntries(temp.Path));
    }

    [Fact]
    public void Read_MissingFileThrowsFileNotFound()
    {
        using var temp = new TempDirectory();
        var path = temp.Combine("absent");
        var error = Assert.Throws<FileNotFoundException>(() => IdxFile.Read(path));
        Assert.Contains(path, error.Message);
    }
}

public class IdxImageDatasetTests
{
    [Fact]
    public void Items_AreScaledImagesAndInt64Labels()
    {
        using var temp = new TempDirectory();
        const int count = 7, rows = 3, columns = 5;
        var (pixels, labels) = Idx.Random(count, rows, columns, seed: 2);
        pixels[0] = 0;
        pixels[1] = 255;
        var images = Idx.Write(temp.Combine("images.gz"), Idx.Encode([count, rows, columns], pixels), gzip: true);
        var labelsPath = Idx.Write(temp.Combine("labels"), Idx.Encode([count], labels));

        using var dataset = new IdxImageDataset(images, labelsPath);

        Assert.Equal(count, dataset.Count);
        Assert.Equal((rows, columns), (dataset.Rows, dataset.Columns));
        Assert.Equal(new long[] { count, 1, rows, columns }, dataset.Images.shape);
        Assert.Equal(ScalarType.Float32, dataset.Images.dtype);
        Assert.Equal(new long[] { count }, dataset.Labels.shape);
        Assert.Equal(ScalarType.Int64, dataset.Labels.dtype);
        var all = dataset.Images.data<float>().ToArray();
        Assert.Equal(pixels.Select(p => p / 255f), all);
        Assert.Equal(labels.Select(l => (long)l), dataset.Labels.data<long>().ToArray());

        for (int i = 0; i < count; i++)
        {
            using var scope = NewDisposeScope();
            var item = dataset.GetTensor(i);
            Assert.Equal(2, item.Count);
            Assert.Equal(new long[] { 1, rows, columns }, item[0].shape);
            Assert.Equal(ScalarType.Float32, item[0].dtype);
            Assert.Equal(pixels.Skip(i * rows * columns).Take(rows * columns).Select(p => p / 255f), item[0].data<float>().ToArray());
            Assert.Empty(item[1].shape);
            Assert.Equal(ScalarType.Int64, item[1].dtype);
            Assert.Equal(labels[i], item[1].item<long>());
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => dataset.GetTensor(count));
        Assert.Throws<ArgumentOutOfRangeException>(() => dataset.GetTensor(-1));
    }

    [Fact]
    public void DataLoader_YieldsShuffledBatchesCoveringEveryItem()
    {
        using var temp = new TempDirectory();
        const int count = 10, rows = 2, columns = 2;
        // Each image's pixels all equal its index, so a batch can be matched to its labels.
        var pixels = Enumerable.Range(0, count).SelectMany(i => Enumerable.Repeat((byte)(i * 20), rows * columns)).ToArray();
        var labels = Enumerable.Range(0, count).Select(i => (byte)i).ToArray();
        var dataset = new IdxImageDataset(
            Idx.Write(temp.Combine("images"), Idx.Encode([count, rows, columns], pixels)),
            Idx.Write(temp.Combine("labels"), Idx.Encode([count], labels)));

        using var loader = utils.data.DataLoader(dataset, batchSize: 4, shuffle: true, seed: 3);
        var seen = new List<long>();
        var sizes = new List<long>();
        foreach (var batch in loader)
        {
            Assert.Equal(2, batch.Count);
            var (x, y) = (batch[0], batch[1]);
            sizes.Add(x.shape[0]);
            Assert.Equal(new long[] { x.shape[0], 1, rows, columns }, x.shape);
            Assert.Equal(new long[] { x.shape[0] }, y.shape);
            var ys = y.data<long>().ToArray();
            var firstPixels = x.reshape(x.shape[0], -1).select(1, 0).data<float>().ToArray();
            Assert.Equal(ys.Select(l => l * 20 / 255f), firstPixels);
            seen.AddRange(ys);
        }
        Assert.Equal(new long[] { 4, 4, 2 }, sizes);
        Assert.Equal(Enumerable.Range(0, count).Select(i => (long)i), seen.Order());
    }

    [Fact]
    public void Constructor_RejectsCountMismatchNamingBothFiles()
    {
        using var temp = new TempDirectory();
        var (pixels, labels) = Idx.Random(count: 6, rows: 2, columns: 2, seed: 4);
        var images = Idx.Write(temp.Combine("images"), Idx.Encode([6, 2, 2], pixels));
        var labelsPath = Idx.Write(temp.Combine("labels.gz"), Idx.Encode([5], labels[..5]), gzip: true);

        var error = Assert.Throws<InvalidDataException>(() => new IdxImageDataset(images, labelsPath));

        Assert.Contains($"'{images}'", error.Message);
        Assert.Contains($"'{labelsPath}'", error.Message);
        Assert.Contains("6 images", error.Message);
        Assert.Contains("5 labels", error.Message);
        Assert.Equal(2, Directory.GetFileSystemEntries(temp.Path).Length);
    }

    [Fact]
    public void Constructor_RejectsSwappedFilesNamingThePath()
    {
        using var temp = new TempDirectory();
        var (pixels, labels) = Idx.Random(count: 3, rows: 2, columns: 2, seed: 5);
        var images = Idx.Write(temp.Combine("images"), Idx.Encode([3, 2, 2], pixels));
        var labelsPath = Idx.Write(temp.Combine("labels"), Idx.Encode([3], labels));

        var error = Assert.Throws<InvalidDataException>(() => new IdxImageDataset(labelsPath, images));

        Assert.Contains($"'{labelsPath}'", error.Message);
    }

    [Fact]
    public void Dispose_ReleasesTheTensorsOnce()
    {
        using var temp = new TempDirectory();
        var (pixels, labels) = Idx.Random(count: 2, rows: 2, columns: 2, seed: 6);
        var dataset = new IdxImageDataset(
            Idx.Write(temp.Combine("images"), Idx.Encode([2, 2, 2], pixels)),
            Idx.Write(temp.Combine("labels"), Idx.Encode([2], labels)));

        dataset.Dispose();
        dataset.Dispose();

        Assert.True(dataset.Images.IsInvalid);
        Assert.True(dataset.Labels.IsInvalid);
        Assert.Throws<ObjectDisposedException>(() => dataset.GetTensor(0));
    }

    [Fact]
    public void Tensors_SurviveTheDisposeScopeTheDatasetWasCreatedIn()
    {
        using var temp = new TempDirectory();
        var (pixels, labels) = Idx.Random(count: 2, rows: 2, columns: 2, seed: 7);
        IdxImageDataset dataset;
        using (NewDisposeScope())
        {
            dataset = new IdxImageDataset(
                Idx.Write(temp.Combine("images"), Idx.Encode([2, 2, 2], pixels)),
                Idx.Write(temp.Combine("labels"), Idx.Encode([2], labels)));
        }
        using (dataset)
        {
            Assert.False(dataset.Images.IsInvalid);
            Assert.Equal(labels.Select(l => (long)l), dataset.Labels.data<long>().ToArray());
        }
    }
}
