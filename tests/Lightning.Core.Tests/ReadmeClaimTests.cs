using Lightning.Callbacks;
using Lightning.Testing;
using static Lightning.Testing.TestTrainer;
using static TorchSharp.torch;

namespace Lightning.Core.Tests;

/// <summary>README claims about Trainer flags and evaluation that no other test covered.</summary>
public class ReadmeClaimTests
{
    [Fact]
    public void MaxTime_StopsAtTheFirstBatchEndPastTheLimit()
    {
        // Any real step takes longer than one tick, so Lightning's Timer (checked at each batch end) stops after step 1.
        using var root = new TempDirectory();
        var trainer = new Trainer(Quiet(root) with { MaxEpochs = 5, MaxTime = TimeSpan.FromTicks(1) });
        trainer.Fit(new BoringModel(), RandomBatches.Create(4));
        Assert.Equal(1, trainer.GlobalStep);
        Assert.True(trainer.ShouldStop);
    }

    [Fact]
    public void MinSteps_KeepsTrainingWhenACallbackAsksToStop()
    {
        using var root = new TempDirectory();
        var trainer = new Trainer(Quiet(root, new StopAtEpochEnd()) with { MaxEpochs = 10, MinSteps = 5 });
        trainer.Fit(new BoringModel(), RandomBatches.Create(2));
        // The stop asked after steps 2 and 4 waits for MinSteps; as in Lightning's epoch loop, it is honoured at the
        // first batch end that meets it (step 5, mid-epoch), not at the next epoch end.
        Assert.Equal(5, trainer.GlobalStep);
    }

    [Fact]
    public void LimitTestBatches_CapsTheTestLoop()
    {
        using var root = new TempDirectory();
        var model = new EvalModel();
        new Trainer(Quiet(root) with { LimitTestBatches = 2 }).Test(model, RandomBatches.Create(5));
        Assert.Equal([0, 1], model.TestBatches);
    }

    [Fact]
    public void LimitPredictBatches_CapsThePredictLoop()
    {
        using var root = new TempDirectory();
        var predictions = new Trainer(Quiet(root) with { LimitPredictBatches = 3 }).Predict(new EvalModel(), RandomBatches.Create(5));
        Assert.Equal(3, predictions.Count);
    }

    [Fact]
    public void Evaluation_RunsInEvalModeWithoutGradients_AndTrainingResumesInTrainMode()
    {
        using var root = new TempDirectory();
        var model = new EvalModel();
        var trainer = new Trainer(Quiet(root) with { MaxEpochs = 2, NumSanityValSteps = 0 });
        trainer.Fit(model, RandomBatches.Create(2), RandomBatches.Create(2, seed: 1));
        trainer.Test(model, RandomBatches.Create(1));
        trainer.Predict(model, RandomBatches.Create(1));

        Assert.Equal(4, model.Seen.Count(s => s.Stage == "train"));
        Assert.All(model.Seen.Where(s => s.Stage == "train"), s => Assert.True(s.Training && s.Grad, $"train step: training {s.Training}, grad {s.Grad}"));
        Assert.Equal(6, model.Seen.Count(s => s.Stage != "train"));
        Assert.All(model.Seen.Where(s => s.Stage != "train"), s => Assert.False(s.Training || s.Grad, $"{s.Stage} step: training {s.Training}, grad {s.Grad}"));
    }

    [Fact]
    public void TestAndPredict_WithCkptPath_UseTheCheckpointsWeights()
    {
        using var root = new TempDirectory();
        var data = RandomBatches.Create(3);
        manual_seed(2);
        var trained = new EvalModel();
        var trainer = new Trainer(Quiet(root) with { MaxEpochs = 2 });
        trainer.Fit(trained, data);
        var path = root.Combine("trained.ckpt");
        trainer.SaveCheckpoint(path);
        using var expected = no_grad();
        var reference = data.Select(b => trained.forward(b)).ToList();

        manual_seed(3);
        var fresh = new EvalModel();
        var predictions = new Trainer(Quiet(root)).Predict(fresh, data, ckptPath: path);
        var tested = new Trainer(Quiet(root)).Test(fresh, data, ckptPath: path);

        Assert.Equal(data.Count, predictions.Count);
        for (int i = 0; i < data.Count; i++) AssertClose(reference[i], predictions[i], $"prediction {i}");
        var loss = data.Select((b, i) => nn.functional.mse_loss(reference[i], ones_like(reference[i])).item<float>()).Average();
        Assert.Equal(loss, tested["test_loss"], 5);
    }

    private sealed class StopAtEpochEnd : Callback
    {
        public override void OnTrainEpochEnd(Trainer trainer, LightningModule module) => trainer.ShouldStop = true;
    }

    private sealed class EvalModel : BoringModel
    {
        public List<(string Stage, bool Training, bool Grad)> Seen { get; } = [];
        public List<int> TestBatches { get; } = [];

        public override Tensor? TrainingStep(Tensor batch, int batchIdx)
        {
            Seen.Add(("train", training, is_grad_enabled()));
            return base.TrainingStep(batch, batchIdx);
        }

        public override void ValidationStep(Tensor batch, int batchIdx) => Seen.Add(("validate", training, is_grad_enabled()));

        public override void TestStep(Tensor batch, int batchIdx)
        {
            Seen.Add(("test", training, is_grad_enabled()));
            TestBatches.Add(batchIdx);
            var prediction = forward(batch);
            Log("test_loss", nn.functional.mse_loss(prediction, ones_like(prediction)));
        }

        public override Tensor PredictStep(Tensor batch, int batchIdx)
        {
            Seen.Add(("predict", training, is_grad_enabled()));
            return forward(batch);
        }
    }
}
