using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Lightning.Serving.Tests;

/// <summary>
/// Two small SDCA regressions trained here on generated rows: model A answers positive scores (label = 10x + 5) and
/// model B negative ones (label = -10x - 5), so every answer tells which model gave it.
/// </summary>
public static class TestModels
{
    private static readonly Lazy<byte[]> s_a = new(() => Train(10f, 5f));
    private static readonly Lazy<byte[]> s_b = new(() => Train(-10f, -5f));
    private static readonly Lazy<byte[]> s_vector = new(TrainVector);

    public static byte[] A => s_a.Value;

    public static byte[] B => s_b.Value;

    /// <summary>Bytes that are not a model: a zip header followed by junk, as a half-written file might look.</summary>
    public static byte[] Corrupt => [.. "PK\u0003\u0004"u8, .. Enumerable.Repeat((byte)7, 200)];

    /// <summary>A regression on three features (label = x0 + 2·x1 + 3·x2), for inputs with a fixed-size vector.</summary>
    public static byte[] Vector => s_vector.Value;

    public static bool IsA(float score) => score > 2f;

    public static bool IsB(float score) => score < -2f;

    /// <summary>Writes the bytes next to the target and renames them over it, as deployment tools do.</summary>
    public static void ReplaceAtomically(string path, byte[] bytes)
    {
        var temp = path + "." + Guid.NewGuid().ToString("N") + ".tmp";
        File.WriteAllBytes(temp, bytes);
        File.Move(temp, path, overwrite: true);
    }

    public static ServiceProvider Services(Action<PredictionEnginePoolBuilder<SizeInput, ScoreOutput>> configure, ILoggerProvider? logs = null)
    {
        var services = new ServiceCollection();
        if (logs is not null) services.AddLogging(b => b.AddProvider(logs));
        configure(services.AddPredictionEnginePool<SizeInput, ScoreOutput>());
        return services.BuildServiceProvider();
    }

    private static byte[] Train(float slope, float intercept)
    {
        var ml = new MLContext(seed: 1);
        var random = new Random(7);
        var rows = Enumerable.Range(0, 300).Select(_ =>
        {
            var x = (float)random.NextDouble();
            return new TrainRow { Size = x, Label = slope * x + intercept + (float)(random.NextDouble() - 0.5) * 0.1f };
        }).ToList();
        var data = ml.Data.LoadFromEnumerable(rows);
        // SDCA diverges on raw features at this size; normalized with a little L2 it converges in a few passes.
        var pipeline = ml.Transforms.Concatenate("Features", nameof(TrainRow.Size))
            .Append(ml.Transforms.NormalizeMeanVariance("Features"))
            .Append(ml.Regression.Trainers.Sdca(labelColumnName: nameof(TrainRow.Label), l2Regularization: 0.01f, maximumNumberOfIterations: 50));
        var model = pipeline.Fit(data);
        using var stream = new MemoryStream();
        ml.Model.Save(model, data.Schema, stream);
        return stream.ToArray();
    }

    private static byte[] TrainVector()
    {
        var ml = new MLContext(seed: 1);
        var random = new Random(7);
        var rows = Enumerable.Range(0, 300).Select(_ =>
        {
            float[] x = [(float)random.NextDouble(), (float)random.NextDouble(), (float)random.NextDouble()];
            return new VectorTrainRow { Features = x, Label = x[0] + 2 * x[1] + 3 * x[2] };
        }).ToList();
        var data = ml.Data.LoadFromEnumerable(rows);
        var model = ml.Transforms.NormalizeMeanVariance("Features")
            .Append(ml.Regression.Trainers.Sdca(labelColumnName: nameof(VectorTrainRow.Label), l2Regularization: 0.01f, maximumNumberOfIterations: 50))
            .Fit(data);
        using var stream = new MemoryStream();
        ml.Model.Save(model, data.Schema, stream);
        return stream.ToArray();
    }

    private sealed class VectorTrainRow
    {
        [VectorType(3)]
        public float[] Features { get; set; } = [];

        public float Label { get; set; }
    }

    private sealed class TrainRow
    {
        public float Size { get; set; }

        public float Label { get; set; }
    }
}
