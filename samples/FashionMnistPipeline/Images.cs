using Lightning.Data;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace FashionMnistPipeline;

/// <summary>A Fashion-MNIST image as the pipeline (and a serving app) sees it.</summary>
public sealed class Image
{
    /// <summary>The class name, e.g. "Sneaker".</summary>
    public string Label { get; set; } = "";

    /// <summary>The 28 × 28 pixels, row by row, scaled to 0..1.</summary>
    [VectorType(Images.PixelCount)]
    public float[] Features { get; set; } = [];
}

internal static class Images
{
    public const int PixelCount = 28 * 28;

    /// <summary>One split as an IDataView of <see cref="Image"/> rows (from the IDX files Lightning.Core reads).</summary>
    public static IDataView Load(MLContext mlContext, bool train)
    {
        using var dataset = new FashionMnist(train: train);
        var pixels = dataset.Images.reshape(dataset.Count, PixelCount).data<float>().ToArray();
        var labels = dataset.Labels.data<long>().ToArray();
        var rows = new List<Image>(labels.Length);
        for (int i = 0; i < labels.Length; i++)
            rows.Add(new Image { Label = FashionMnist.Classes[(int)labels[i]], Features = pixels.AsSpan(i * PixelCount, PixelCount).ToArray() });
        return mlContext.Data.LoadFromEnumerable(rows);
    }
}
