using System.Diagnostics;
using Lightning.Data;
using Lightning.Testing;
using TorchSharp;
using Xunit.Abstractions;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Data;

public class FashionMnistTests(ITestOutputHelper output)
{
    private static readonly string[] TrainFiles = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"];
    private static readonly string[] TestFiles = ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"];

    /// <summary>Writes a small split the way the official files are laid out; returns the pixels and labels.</summary>
    private static (byte[] Pixels, byte[] Labels) WriteSplit(string folder, string[] names, int count, bool gzipImages, bool gzipLabels, int seed)
    {
        var (pixels, labels) = Idx.Random(count, 28, 28, seed);
        Idx.Write(Path.Combine(folder, names[0] + (gzipImages ? ".gz" : "")), Idx.Encode([count, 28, 28], pixels), gzipImages);
        Idx.Write(Path.Combine(folder, names[1] + (gzipLabels ? ".gz" : "")), Idx.Encode([count], labels), gzipLabels);
        return (pixels, labels);
    }

    /// <summary>Runs <paramref name="action"/> with <c>LIGHTNING_DATA</c> set to <paramref name="value"/> (null: unset).</summary>
    private static void WithRootVariable(string? value, Action action)
    {
        var saved = Environment.GetEnvironmentVariable(FashionMnist.RootVariable);
        Environment.SetEnvironmentVariable(FashionMnist.RootVariable, value);
        try { action(); }
        finally { Environment.SetEnvironmentVariable(FashionMnist.RootVariable, saved); }
    }

    [Theory]
    [InlineData(true, true, false)]
    [InlineData(false, false, true)]
    public void Loads_FilesFoundRawOrGzipped(bool train, bool gzipImages, bool gzipLabels)
    {
        using var temp = new TempDirectory();
        var (pixels, labels) = WriteSplit(temp.Path, train ? TrainFiles : TestFiles, count: 3, gzipImages, gzipLabels, seed: 12);
        // The other split lies there too, with other sizes: the right one must be picked.
        WriteSplit(temp.Path, train ? TestFiles : TrainFiles, count: 2, gzipImages: true, gzipLabels: true, seed: 13);

        using var dataset = new FashionMnist(temp.Path, train);

        Assert.Equal(temp.Path, dataset.Root);
        Assert.Equal(train, dataset.Train);
        Assert.Equal(3, dataset.Count);
        Assert.Equal(pixels.Select(p => p / 255f), dataset.Images.data<float>().ToArray());
        Assert.Equal(labels.Select(l => (long)l), dataset.Labels.data<long>().ToArray());
    }

    [Fact]
    public void MissingFiles_WithoutDownload_SayWhereAndHowToGetThem()
    {
        using var temp = new TempDirectory();
        WriteSplit(temp.Path, TestFiles, count: 2, gzipImages: true, gzipLabels: true, seed: 14);
        var before = Directory.GetFileSystemEntries(temp.Path).Order().ToArray();

        var error = Assert.Throws<FileNotFoundException>(() => new FashionMnist(temp.Path, train: true));

        Assert.Contains(temp.Path, error.Message);
        Assert.Contains("root argument", error.Message);
        Assert.Contains("train-images-idx3-ubyte", error.Message);
        Assert.Contains("dataset-fashion-mnist", error.Message);
        Assert.Contains("LIGHTNING_DATA", error.Message);
        Assert.Contains("download: true", error.Message);
        Assert.Equal(before, Directory.GetFileSystemEntries(temp.Path).Order());
    }

    [Fact]
    public void DefaultRoot_ComesFromLightningDataElseDebian()
    {
        using var temp = new TempDirectory();
        WithRootVariable(temp.Path, () =>
        {
            Assert.Equal(temp.Path, FashionMnist.DefaultRoot);
            var error = Assert.Throws<FileNotFoundException>(() => new FashionMnist(train: false));
            Assert.Contains(temp.Path, error.Message);
            Assert.Contains("LIGHTNING_DATA environment variable", error.Message);

            WriteSplit(temp.Path, TestFiles, count: 4, gzipImages: false, gzipLabels: false, seed: 15);
            using var dataset = new FashionMnist(train: false);
            Assert.Equal(temp.Path, dataset.Root);
            Assert.Equal(4, dataset.Count);
        });
        WithRootVariable(null, () => Assert.Equal(FashionMnist.DebianRoot, FashionMnist.DefaultRoot));
        WithRootVariable("", () => Assert.Equal("/usr/share/datasets/fashion-mnist", FashionMnist.DefaultRoot));
    }

    [Fact]
    public void Download_OfFilesWithoutTheOfficialHashes_FailsAndLeavesNothing()
    {
        using var temp = new TempDirectory();
        using var source = new TempDirectory();
        WriteSplit(source.Path, TrainFiles, count: 3, gzipImages: true, gzipLabels: true, seed: 16);
        var served = TrainFiles.ToDictionary(n => $"/mirror/{n}.gz", n => File.ReadAllBytes(source.Combine(n + ".gz")));
        using var server = new LocalHttpServer(served);
        var root = temp.Combine("not-yet-there");

        var error = Assert.Throws<InvalidDataException>(() =>
            new FashionMnist(root, train: true, download: true, mirror: new Uri(server.Root, "mirror")));

        Assert.Contains("train-images-idx3-ubyte.gz", error.Message);
        // What was served is hashed here, independently of the code under test; the official hash it was compared with
        // is whatever 64 hex digits the message names, as long as it is not the served file's.
        var servedHash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(served["/mirror/train-images-idx3-ubyte.gz"]));
        var hashes = System.Text.RegularExpressions.Regex.Match(error.Message, "expected ([0-9a-f]{64}), got ([0-9a-f]{64})");
        Assert.True(hashes.Success, error.Message);
        Assert.Equal(servedHash, hashes.Groups[2].Value);
        Assert.NotEqual(servedHash, hashes.Groups[1].Value);
        Assert.Equal(new[] { "/mirror/train-images-idx3-ubyte.gz" }, server.Requests);
        Assert.False(Directory.Exists(root));
        Assert.Empty(Directory.GetFileSystemEntries(temp.Path));
    }

    [Fact]
    public void Download_FromAClosedPort_ThrowsFileNotFoundWithTheReason()
    {
        using var temp = new TempDirectory();
        var mirror = new Uri($"http://127.0.0.1:{LocalHttpServer.FreePort()}/");

        var error = Assert.Throws<FileNotFoundException>(() => new FashionMnist(temp.Path, train: false, download: true, mirror: mirror));

        Assert.Contains(temp.Path, error.Message);
        Assert.Contains("download", error.Message);
        Assert.Contains("failed", error.Message);
        Assert.Contains($"{mirror}t10k-images-idx3-ubyte.gz", error.Message);
        Assert.Contains("dataset-fashion-mnist", error.Message);
        Assert.IsAssignableFrom<IOException>(error.InnerException);
        Assert.Empty(Directory.GetFileSystemEntries(temp.Path));
    }

    [RequiresFact(Component.FashionMnist)]
    public void RealTrainingSet_LoadsFromTheDebianPackage()
    {

        var clock = Stopwatch.StartNew();
        var images = IdxFile.Read(Path.Combine(FashionMnist.DebianRoot, "train-images-idx3-ubyte.gz"), expectedRank: 3);
        output.WriteLine($"IdxFile.Read of the training images ({images.Data.Length} bytes): {clock.ElapsedMilliseconds} ms");
        Assert.Equal(new[] { 60000, 28, 28 }, images.Dimensions);

        using (zeros(1)) { } // loads libtorch, which is not what is timed
        clock.Restart();
        using var dataset = new FashionMnist(FashionMnist.DebianRoot, train: true);
        output.WriteLine($"FashionMnist(train: true): {clock.ElapsedMilliseconds} ms");

        Assert.Equal(60000, dataset.Count);
        Assert.Equal(new long[] { 60000, 1, 28, 28 }, dataset.Images.shape);
        Assert.InRange(dataset.Images.min().item<float>(), 0f, 1f);
        Assert.InRange(dataset.Images.max().item<float>(), 0f, 1f);
        Assert.Equal(0L, dataset.Labels.min().item<long>());
        Assert.Equal(9L, dataset.Labels.max().item<long>());
        // Fashion-MNIST is balanced: 6000 training images per class.
        Assert.All(dataset.Labels.bincount(null).data<long>().ToArray(), n => Assert.Equal(6000L, n));

        using (NewDisposeScope())
        {
            var item = dataset.GetTensor(0);
            Assert.Equal(new long[] { 1, 28, 28 }, item[0].shape);
            Assert.Empty(item[1].shape);
        }

        using var loader = utils.data.DataLoader(dataset, batchSize: 64, shuffle: true, seed: 0, disposeDataset: false);
        int batches = 0;
        foreach (var batch in loader.Take(3))
        {
            Assert.Equal(new long[] { 64, 1, 28, 28 }, batch[0].shape);
            Assert.Equal(ScalarType.Float32, batch[0].dtype);
            Assert.Equal(new long[] { 64 }, batch[1].shape);
            Assert.Equal(ScalarType.Int64, batch[1].dtype);
            batches++;
        }
        Assert.Equal(3, batches);
        Assert.Equal((60000 + 63) / 64, loader.Count);
    }
}
