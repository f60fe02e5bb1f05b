using System.Globalization;
using Lightning.Callbacks;
using Lightning.Testing;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Callbacks;

public class PredictionWriterTests
{
    [Fact]
    public void Predict_BatchInterval_WritesOneFilePerBatchHoldingItsPrediction()
    {
        using var root = new TempDirectory();
        var writer = new FileWriter(root.Path, WriteInterval.Batch);

        var predictions = Predict(root, writer, batches: 3);

        Assert.Equal(WriteInterval.Batch, writer.Interval);
        Assert.Equal(new[] { "batch_0.txt", "batch_1.txt", "batch_2.txt" },
            Directory.GetFiles(root.Path, "*.txt").Select(Path.GetFileName).Order());
        for (int i = 0; i < 3; i++)
            Assert.Equal(Values(predictions[i]), Read(root.Combine($"batch_{i}.txt")));
    }

    [Fact]
    public void Predict_EpochInterval_WritesEveryPredictionOnceAtTheEnd()
    {
        using var root = new TempDirectory();
        var writer = new FileWriter(root.Path, WriteInterval.Epoch);

        var predictions = Predict(root, writer, batches: 3);

        Assert.Equal(new[] { "epoch.txt" }, Directory.GetFiles(root.Path, "*.txt").Select(Path.GetFileName));
        Assert.Equal(predictions.SelectMany(Values), Read(root.Combine("epoch.txt")));
    }

    [Fact]
    public void Predict_BatchAndEpochInterval_WritesBoth()
    {
        using var root = new TempDirectory();
        var writer = new FileWriter(root.Path, WriteInterval.BatchAndEpoch);

        var predictions = Predict(root, writer, batches: 2);

        Assert.Equal(new[] { "batch_0.txt", "batch_1.txt", "epoch.txt" },
            Directory.GetFiles(root.Path, "*.txt").Select(Path.GetFileName).Order());
        Assert.Equal(Values(predictions[1]), Read(root.Combine("batch_1.txt")));
        Assert.Equal(predictions.SelectMany(Values), Read(root.Combine("epoch.txt")));
    }

    [Fact]
    public void Predict_WriterWithoutTheMethodItsIntervalNeeds_FailsNamingIt()
    {
        using var root = new TempDirectory();

        var error = Assert.Throws<NotImplementedException>(() => Predict(root, new EpochOnlyWriter(WriteInterval.BatchAndEpoch), batches: 1));

        Assert.Contains("WriteOnBatchEnd", error.Message);
        Assert.Contains("BatchAndEpoch", error.Message);
    }

    [Fact]
    public void Constructor_UnknownInterval_FailsNamingTheAllowedValues()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new EpochOnlyWriter((WriteInterval)7));

        Assert.Contains("writeInterval = 7", error.Message);
        Assert.Contains("Batch, Epoch, BatchAndEpoch", error.Message);
    }

    private static IReadOnlyList<Tensor> Predict(TempDirectory root, PredictionWriter writer, int batches)
    {
        var trainer = new Trainer(TestTrainer.Quiet(root) with { EnableCheckpointing = true, Callbacks = [writer] });
        return trainer.Predict(new PredictingModel(), RandomBatches.Create(batches, batchSize: 3, seed: 5));
    }

    private static float[] Values(Tensor tensor) => tensor.data<float>().ToArray();

    private static float[] Read(string path) =>
        File.ReadAllLines(path).Select(line => float.Parse(line, CultureInfo.InvariantCulture)).ToArray();

    private static void Write(string path, IEnumerable<Tensor> tensors) =>
        File.WriteAllLines(path, tensors.SelectMany(Values).Select(v => v.ToString("R", CultureInfo.InvariantCulture)));

    /// <summary>Writes each batch's prediction to <c>batch_N.txt</c> and all of them to <c>epoch.txt</c>, one value per line.</summary>
    private sealed class FileWriter(string folder, WriteInterval interval) : PredictionWriter(interval)
    {
        public override void WriteOnBatchEnd(Trainer trainer, LightningModule module, Tensor prediction, object? batch, int batchIdx)
        {
            Assert.Equal(3, ((Tensor)batch!).shape[0]);
            Write(Path.Combine(folder, $"batch_{batchIdx}.txt"), [prediction]);
        }

        public override void WriteOnEpochEnd(Trainer trainer, LightningModule module, IReadOnlyList<Tensor> predictions) =>
            Write(Path.Combine(folder, "epoch.txt"), predictions);
    }

    private sealed class EpochOnlyWriter(WriteInterval interval) : PredictionWriter(interval)
    {
        public override void WriteOnEpochEnd(Trainer trainer, LightningModule module, IReadOnlyList<Tensor> predictions) { }
    }

    private sealed class PredictingModel : BoringModel
    {
        public override Tensor PredictStep(Tensor batch, int batchIdx) => forward(batch);
    }
}
