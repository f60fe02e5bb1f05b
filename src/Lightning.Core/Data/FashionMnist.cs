namespace Lightning.Data;

/// <summary>
/// Fashion-MNIST (Zalando): 28×28 grey-scale images of clothing in 10 classes, 60,000 for training and 10,000 for
/// testing, as torchvision's <c>FashionMNIST</c>. The files are read from a root folder, as named on the official site
/// (<c>train-images-idx3-ubyte</c>, …) raw or with <c>.gz</c>; the Debian package <c>dataset-fashion-mnist</c> installs
/// them in <see cref="DebianRoot"/>.
/// </summary>
public class FashionMnist : IdxImageDataset
{
    /// <summary>The environment variable naming the default root folder.</summary>
    public const string RootVariable = "LIGHTNING_DATA";

    /// <summary>Where the Debian package <c>dataset-fashion-mnist</c> installs the files.</summary>
    public const string DebianRoot = "/usr/share/datasets/fashion-mnist";

    private const string DebianPackage = "dataset-fashion-mnist";

    private static readonly DataFile TrainImages = new("train-images-idx3-ubyte", "08dc20ab1689590a0bcd66e874647b6ee8464e2d501b5a3f1f78831db19a3fdc");
    private static readonly DataFile TrainLabels = new("train-labels-idx1-ubyte", "b0197879cbda89f3dc7b894f9fd52b858e68ea4182b6947c9d8c2b67e5f18dcc");
    private static readonly DataFile TestImages = new("t10k-images-idx3-ubyte", "78dcbbfb5a27efaf1b6c1d616caca68560be8766c5bffcb2791df9273a534229");
    private static readonly DataFile TestLabels = new("t10k-labels-idx1-ubyte", "42bd18137a62d5998cdeae52bf3a0676ac6b706f5cf8439b47bb5b151ae3dccf");

    /// <summary>Opens the training or the test split.</summary>
    /// <param name="root">
    /// The folder holding the files; null: <see cref="DefaultRoot"/> (the <c>LIGHTNING_DATA</c> environment variable,
    /// else <see cref="DebianRoot"/>).
    /// </param>
    /// <param name="train">True: the 60,000 training images; false: the 10,000 test images.</param>
    /// <param name="download">
    /// Download the split's missing files into <paramref name="root"/> (as <c>.gz</c>, checked against the official
    /// SHA-256 hashes) from <paramref name="mirror"/>. Files already present are used as they are.
    /// </param>
    /// <param name="mirror">The address of a folder holding the <c>.gz</c> files; null: <see cref="DefaultMirror"/>.</param>
    /// <exception cref="FileNotFoundException">
    /// Files are missing and <paramref name="download"/> is false, or the download failed. The message says where the
    /// files were looked for, why there, and how to get them.
    /// </exception>
    /// <exception cref="InvalidDataException">A downloaded file does not have the official hash, or a file is corrupted.</exception>
    public FashionMnist(string? root = null, bool train = true, bool download = false, Uri? mirror = null)
        : this(Locate(root, train, download, mirror), train) { }

    private FashionMnist((string Root, string Images, string Labels) files, bool train)
        : base(files.Images, files.Labels) => (Root, Train) = (files.Root, train);

    /// <summary>The class names, indexed by label.</summary>
    public static IReadOnlyList<string> Classes { get; } =
        ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

    /// <summary>The official download site (Zalando's S3 bucket).</summary>
    public static Uri DefaultMirror { get; } = new("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/");

    /// <summary>
    /// The root used when none is given: the <c>LIGHTNING_DATA</c> environment variable when set, else
    /// <see cref="DebianRoot"/>. Read on each call.
    /// </summary>
    public static string DefaultRoot => ResolveDefault().Root;

    /// <summary>The folder the files were read from.</summary>
    public string Root { get; }

    /// <summary>True for the training split, false for the test split.</summary>
    public bool Train { get; }

    private static (string Root, string Source) ResolveDefault()
    {
        var variable = Environment.GetEnvironmentVariable(RootVariable);
        return string.IsNullOrWhiteSpace(variable)
            ? (DebianRoot, $"the Debian default; neither the root argument nor {RootVariable} was given")
            : (variable, $"taken from the {RootVariable} environment variable");
    }

    private static (string Root, string Images, string Labels) Locate(string? root, bool train, bool download, Uri? mirror)
    {
        var (folder, source) = root is null ? ResolveDefault() : (root, "given as the root argument");
        ArgumentException.ThrowIfNullOrWhiteSpace(folder, nameof(root));
        DataFile[] files = train ? [TrainImages, TrainLabels] : [TestImages, TestLabels];
        var split = train ? "training" : "test";
        var found = files.Select(f => Find(folder, f.Name)).ToArray();
        var missing = files.Where((_, i) => found[i] is null).ToList();
        if (missing.Count > 0)
        {
            var site = Folder(mirror ?? DefaultMirror);
            var where = $"Fashion-MNIST {split} files not found in '{folder}' ({source}): missing " +
                        string.Join(", ", missing.Select(f => $"{f.Name} or {f.Name}.gz")) + ".";
            if (!download)
                throw new FileNotFoundException(where + " " + Help(site), Path.Combine(folder, missing[0].Name + ".gz"));
            DownloadMissing(folder, missing, site, where);
            found = files.Select(f => Find(folder, f.Name)).ToArray();
        }
        return (folder, found[0]!, found[1]!);
    }

    private static void DownloadMissing(string folder, List<DataFile> missing, Uri site, string where)
    {
        bool created = !Directory.Exists(folder);
        var current = missing[0];
        try
        {
            foreach (var file in missing)
            {
                current = file;
                DatasetDownloader.Download(new Uri(site, file.Name + ".gz"), Path.Combine(folder, file.Name + ".gz"), file.Sha256);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            RemoveIfCreatedAndEmpty(folder, created);
            throw new FileNotFoundException(
                $"{where} The download failed. {e.Message} {Help(site)}",
                Path.Combine(folder, current.Name + ".gz"), e);
        }
        catch
        {
            RemoveIfCreatedAndEmpty(folder, created);
            throw;
        }
    }

    private static string Help(Uri site) =>
        $"To get the data: install the Debian package (apt-get install {DebianPackage}, which puts the files in {DebianRoot}); " +
        $"or set {RootVariable} to a folder holding the files (or pass root); or pass download: true with network access " +
        $"to fetch them from {site}.";

    private static string? Find(string folder, string name)
    {
        foreach (var candidate in new[] { Path.Combine(folder, name), Path.Combine(folder, name + ".gz") })
            if (File.Exists(candidate)) return candidate;
        return null;
    }

    private static Uri Folder(Uri mirror)
    {
        if (!mirror.IsAbsoluteUri)
            throw new ArgumentException($"The mirror '{mirror}' must be an absolute http or https address.", nameof(mirror));
        return mirror.AbsoluteUri.EndsWith('/') ? mirror : new Uri(mirror.AbsoluteUri + "/");
    }

    private static void RemoveIfCreatedAndEmpty(string folder, bool created)
    {
        try
        {
            if (created && Directory.Exists(folder) && !Directory.EnumerateFileSystemEntries(folder).Any()) Directory.Delete(folder);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    private sealed record DataFile(string Name, string Sha256);
}
