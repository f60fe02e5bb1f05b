using Lightning.Callbacks;
using Lightning.Testing;
using TorchSharp;
using static Lightning.Testing.TestTrainer;
using static TorchSharp.torch;

namespace Lightning.Core.Tests;

/// <summary>
/// Step 7 of "learn Lightning in 15 minutes" ("supercharge training"), line by line, with the step's
/// <see cref="LitAutoEncoder"/>, which has no validation step. Lines that need GPUs must fail naming what is missing.
/// </summary>
public class QuickstartStep7Tests
{
    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    public void FourGpus_WithoutThem_FailNamingWhatIsAvailable(int cudaDevices)
    {
        // trainer = L.Trainer(devices=4, accelerator="gpu"), on machines with fewer GPUs (the count is injected);
        // with four, "auto" runs "ddp" with one process per GPU: DdpTests.FourGpus_AutoRunsDdp_OneRankPerGpu.
        Accelerators.Accelerator.CudaDeviceCountOverride.Value = cudaDevices;
        try
        {
            var error = Record.Exception(() => new Trainer(new TrainerOptions { Devices = 4, Accelerator = "gpu" }));
            if (cudaDevices == 0)
                Assert.Contains("no CUDA device is available (CUDA devices: 0; available: cpu)", Assert.IsType<InvalidOperationException>(error).Message);
            else
                Assert.Contains($"asks for CUDA devices that do not exist; available: {cudaDevices}", Assert.IsType<InvalidOperationException>(error).Message);
        }
        finally
        {
            Accelerators.Accelerator.CudaDeviceCountOverride.Value = null;
        }
    }

    [Fact]
    public void DataParallelOnSeveralGpus_PointsToDdp()
    {
        Accelerators.Accelerator.CudaDeviceCountOverride.Value = 4;
        try
        {
            var error = Assert.Throws<ArgumentException>(() => new Trainer(new TrainerOptions { Devices = 4, Accelerator = "gpu", Strategy = "dp" }));
            Assert.Contains("Strategy = \"dp\" with Devices = 4 asks for 4 CUDA devices; data parallel runs on CPU replicas only. Use Strategy = \"ddp\"", error.Message);
        }
        finally
        {
            Accelerators.Accelerator.CudaDeviceCountOverride.Value = null;
        }
    }

    [Fact]
    public void DeepSpeedStage2_PortsAsWritten_AsOurZeroStage2()
    {
        // trainer = L.Trainer(devices=4, accelerator="gpu", strategy="deepspeed_stage_2", precision=16): the name selects
        // "ddp_sharded" (ZeRO stage 2 on MPI). With four GPUs it runs one rank per GPU
        // (DdpShardedTests.Step7Line_OnFourGpus_RunsOneShardedRankPerGpu); on one CPU device it trains in this process,
        // float16 mixed precision falling back to bfloat16 there as Lightning does.
        var trainer = new Trainer(new TrainerOptions
        {
            Devices = 1, Accelerator = "cpu", Strategy = "deepspeed_stage_2", Precision = "16", Loggers = [], EnableProgressBar = false,
        });
        Assert.IsType<Lightning.Strategies.DdpShardedStrategy>(trainer.Strategy);
        Assert.Equal("bf16-mixed", trainer.Precision);
    }

    [Fact]
    public void MaxMinEpochsAndOverfitBatches_TrainTenEpochsOnOneBatchWithoutAValidationStep()
    {
        // trainer = L.Trainer(max_epochs=10, min_epochs=5, overfit_batches=1)
        using var root = new TempDirectory();
        manual_seed(7);
        var model = new LitAutoEncoder();
        var trainer = new Trainer(Quiet(root) with { MaxEpochs = 10, MinEpochs = 5, OverfitBatches = 1 });

        trainer.Fit(model, LitAutoEncoder.Batches(4));

        Assert.Equal((10, 10L), (trainer.CurrentEpoch, trainer.GlobalStep));
        Assert.Null(trainer.NumValBatches);
        Assert.Equal(10, model.Losses.Count);
        // One batch, ten Adam steps: the loss on it falls.
        Assert.True(model.Losses[^1] < model.Losses[0], $"loss {model.Losses[0]} -> {model.Losses[^1]}");
    }

    [Fact]
    public void StochasticWeightAveragingCallback_AveragesTheLastEpochsIntoTheModule()
    {
        // trainer = L.Trainer(callbacks=[StochasticWeightAveraging(swa_lrs=1e-2)])
        using var root = new TempDirectory();
        manual_seed(7);
        var model = new LitAutoEncoder();
        using var swa = new StochasticWeightAveraging(swaLrs: 1e-2);
        var epochWeights = new List<Dictionary<string, Tensor>>();
        var trainer = new Trainer(Quiet(root, swa, new LambdaCallback(onTrainEpochEnd: (_, m) => epochWeights.Add(Snapshot(m)))) with { MaxEpochs = 5 });

        trainer.Fit(model, LitAutoEncoder.Batches(3));

        // swa_epoch_start = 0.8 of 5 epochs: epoch 4 (1-based) on, so the last two epochs are averaged.
        Assert.Equal((3, 4), (swa.SwaStart, swa.SwaEnd));
        Assert.Equal(2, swa.AveragedCount);
        foreach (var (name, parameter) in model.named_parameters())
        {
            using var mean = stack(epochWeights.Skip(3).Select(w => w[name]).ToArray()).mean([0]);
            AssertClose(mean, parameter, name);
        }
    }
}
