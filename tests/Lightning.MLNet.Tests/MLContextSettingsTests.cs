using System.Globalization;
using System.Text.RegularExpressions;
using Lightning.Testing;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Lightning.MLNet.Tests;

/// <summary>The trainers follow their catalog's MLContext: progress in <c>MLContext.Log</c>, and its GpuDeviceId/FallbackToCpu.</summary>
public sealed class MLContextSettingsTests : IDisposable
{
    private readonly TempDirectory _root = new();

    public void Dispose() => _root.Dispose();

    private static List<string> Messages(MLContext ml)
    {
        var messages = new List<string>();
        ml.Log += (_, e) =>
        {
            if (e.Source.StartsWith("Lightning", StringComparison.Ordinal)) lock (messages) messages.Add(e.RawMessage);
        };
        return messages;
    }

    [Fact]
    public void Fit_WritesEachEpochsStepAndLossToTheContextsLog()
    {
        var ml = Contexts.New();
        var messages = Messages(ml);
        const int rows = 100, batch = 32, epochs = 3;
        var options = TaskEvaluationTests.Options(_root.Path, nameof(Row.Class), epochs) with { BatchSize = batch };

        using var model = ml.MulticlassClassification.Trainers.Lightning(() => new Mlp(Data.FeatureCount, Data.ClassCount), options)
            .Fit(Data.View(ml, Data.Rows(rows, seed: 1)));

        var epochLines = messages.Select(m => Regex.Match(m, @"^epoch (\d+): step (\d+), .*train_loss = ([0-9.eE+-]+)")).Where(m => m.Success).ToList();
        Assert.Equal(epochs, epochLines.Count);
        int stepsPerEpoch = (rows + batch - 1) / batch;
        for (int e = 0; e < epochs; e++)
        {
            Assert.Equal(e + 1, int.Parse(epochLines[e].Groups[1].Value, CultureInfo.InvariantCulture));
            Assert.Equal((e + 1) * stepsPerEpoch, int.Parse(epochLines[e].Groups[2].Value, CultureInfo.InvariantCulture));
            var loss = double.Parse(epochLines[e].Groups[3].Value, CultureInfo.InvariantCulture);
            Assert.True(loss > 0 && loss < 10, $"loss {loss}");
        }
        Assert.Contains(messages, m => m.StartsWith("training Mlp (Multiclass) on 100 rows of Features (Vector<Single, 20>), batch size 32", StringComparison.Ordinal));
    }

    [NoCudaFact]
    public void Fit_GpuAskedForWithoutCudaAndFallback_TrainsOnTheCpuAndSaysSo()
    {
        var ml = Contexts.New();
        ml.GpuDeviceId = 0;
        ml.FallbackToCpu = true;
        var messages = Messages(ml);

        using var model = ml.Regression.Trainers.Lightning(() => new Mlp(Data.FeatureCount, 1, regression: true),
            TaskEvaluationTests.Options(_root.Path, nameof(Row.Target), epochs: 1)).Fit(Data.View(ml, Data.Rows(64, seed: 1)));

        Assert.Contains(messages, m => m.Contains("MLContext.GpuDeviceId is 0, but TorchSharp finds no CUDA device", StringComparison.Ordinal)
            && m.Contains("training on the CPU, as MLContext.FallbackToCpu is true", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.Contains("accelerator cpu", StringComparison.Ordinal));
        Assert.Contains(messages, m => m.Contains("scoring on the CPU, as MLContext.FallbackToCpu is true", StringComparison.Ordinal));
        Assert.Equal(64, model.Transform(Data.View(ml, Data.Rows(64, seed: 2))).GetColumn<float>("Score").Count(float.IsFinite));
    }

    [NoCudaFact]
    public void Fit_GpuAskedForWithoutCudaOrFallback_FailsNamingTheSettings()
    {
        var ml = Contexts.New();
        ml.GpuDeviceId = 0;
        ml.FallbackToCpu = false;
        var trainer = ml.Regression.Trainers.Lightning(() => new Mlp(Data.FeatureCount, 1, regression: true),
            TaskEvaluationTests.Options(_root.Path, nameof(Row.Target), epochs: 1));

        var error = Assert.Throws<InvalidOperationException>(() => trainer.Fit(Data.View(ml, Data.Rows(16, seed: 1))));

        Assert.Equal("MLContext.GpuDeviceId is 0, but TorchSharp finds no CUDA device (a CPU build of libtorch, or no GPU). " +
            "Set MLContext.FallbackToCpu = true to train on the CPU instead, or GpuDeviceId = null.", error.Message);
    }
}
