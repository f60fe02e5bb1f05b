using Lightning.Testing;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms.Image;
using static TorchSharp.torch;

namespace Lightning.MLNet.Tests;

/// <summary>
/// An image column (<c>MLImage</c> of known size) reaches the module as float32 [batch, 3, H, W]: red, green and blue
/// planes scaled to [0, 1], whatever the image's pixel format, in training, <c>Transform</c>, a prediction engine and the
/// saved model.
/// </summary>
public sealed class ImageColumnsTests : IDisposable
{
    private const int Side = 6;

    private readonly TempDirectory _root = new();
    private readonly MLContext _ml = Contexts.New();

    public void Dispose() => _root.Dispose();

    public sealed class ImageRow
    {
        [ImageType(Side, Side)]
        public MLImage? Image { get; set; }

        public float Target { get; set; }
    }

    public sealed class PathRow
    {
        public string Path { get; set; } = "";

        public float Target { get; set; }
    }

    public sealed class ScoreRow
    {
        public float Score { get; set; }
    }

    /// <summary>
    /// Random RGB images, alternately stored as RGBA and BGRA, with their own [3, H, W] planes scaled to [0, 1]. The rows
    /// make new images each time they are enumerated: ML.NET's ExtractPixels disposes the images it read when its cursor
    /// ends (as LoadImages makes new ones per read), so in-memory images serve one read.
    /// </summary>
    private static (IEnumerable<ImageRow> Rows, float[] Planes) Images(int count, int seed)
    {
        var random = new Random(seed);
        var rows = new List<Func<ImageRow>>();
        var planes = new float[count * 3 * Side * Side];
        for (int n = 0; n < count; n++)
        {
            var rgb = new byte[3 * Side * Side];
            random.NextBytes(rgb);
            var format = n % 2 == 0 ? MLPixelFormat.Rgba32 : MLPixelFormat.Bgra32;
            var pixels = new byte[4 * Side * Side];
            for (int p = 0; p < Side * Side; p++)
            {
                byte r = rgb[p], g = rgb[Side * Side + p], b = rgb[2 * Side * Side + p];
                (pixels[4 * p], pixels[4 * p + 1], pixels[4 * p + 2], pixels[4 * p + 3]) = format == MLPixelFormat.Rgba32 ? (r, g, b, (byte)255) : (b, g, r, (byte)255);
            }
            for (int i = 0; i < rgb.Length; i++) planes[n * rgb.Length + i] = rgb[i] / 255f;
            var target = rgb.Take(Side * Side).Average(v => v / 255f);
            rows.Add(() => new ImageRow { Image = MLImage.CreateFromPixels(Side, Side, format, pixels), Target = target });
        }
        return (rows.Select(make => make()), planes);
    }

    [Fact]
    public void Regression_ImageColumn_ScoresEqualTheModulesForwardOnNchwPlanes()
    {
        var (trainRows, _) = Images(24, seed: 1);
        var (testRows, planes) = Images(6, seed: 2);
        const int count = 6;
        var train = _ml.Data.LoadFromEnumerable(trainRows);
        var test = _ml.Data.LoadFromEnumerable(testRows);
        Assert.Equal(new ImageDataViewType(Side, Side), train.Schema["Image"].Type);
        using var model = _ml.Regression.Trainers.Lightning(() => new ColumnsNet([(ColumnKind.Image, Side)], 1, regression: true)
            {
                OnBatch = batch => Assert.Equal([batch[0].shape[0], 3, Side, Side], batch[0].shape),
            },
            MultipleInputColumnsTests.Options(_root.Path, nameof(ImageRow.Target), "Image")).Fit(train);

        var expected = MultipleInputColumnsTests.Forward((ColumnsNet)model.Module, tensor(planes, [count, 3, Side, Side]));
        var transformed = model.Transform(test).GetColumn<float>("Score").ToArray();
        using var engine = _ml.Model.CreatePredictionEngine<ImageRow, ScoreRow>(model);
        var path = Path.Combine(_root.Path, "model.zip");
        _ml.Model.Save(model, train.Schema, path);
        var reloaded = Contexts.New().Model.Load(path, out _).Transform(test).GetColumn<float>("Score").ToArray();
        Assert.Equal(count, transformed.Length);
        for (int i = 0; i < count; i++)
        {
            Assert.Equal(expected[i][0], transformed[i], 4);
            Assert.Equal(expected[i][0], engine.Predict(testRows.ElementAt(i)).Score, 4);
            Assert.Equal(expected[i][0], reloaded[i], 4);
        }
    }

    [Fact]
    public void Fit_ImagesOfUnknownSize_FailNamingColumnAndAskingForAResize()
    {
        // Two image files of different sizes, loaded as LoadImages does: an Image column of unknown size.
        var rows = new List<PathRow>();
        foreach (var (side, i) in new[] { (Side, 0), (Side + 2, 1) })
        {
            using var image = MLImage.CreateFromPixels(side, side, MLPixelFormat.Rgba32, Enumerable.Repeat((byte)200, 4 * side * side).ToArray());
            var path = Path.Combine(_root.Path, $"image{i}.png");
            image.Save(path);
            rows.Add(new PathRow { Path = path, Target = i });
        }
        var data = _ml.Data.LoadFromEnumerable(rows).Let(d => _ml.Transforms.LoadImages("Image", null, nameof(PathRow.Path)).Fit(d).Transform(d));
        Assert.Equal(new ImageDataViewType(), data.Schema["Image"].Type);
        var trainer = _ml.Regression.Trainers.Lightning(() => new ColumnsNet([(ColumnKind.Image, Side)], 1, regression: true),
            MultipleInputColumnsTests.Options(_root.Path, nameof(ImageRow.Target), "Image"));

        var error = Assert.Throws<ArgumentOutOfRangeException>(() => trainer.Fit(data));
        Assert.Contains("Schema mismatch for input column 'Image': expected an Image of known size (its rows may differ in size: resize them upstream, e.g. mlContext.Transforms.ResizeImages), got Image", error.Message);
    }
}
