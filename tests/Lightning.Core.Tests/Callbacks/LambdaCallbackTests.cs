using Lightning.Callbacks;
using Lightning.Checkpoints;
using Lightning.Testing;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Callbacks;

public class LambdaCallbackTests
{
    [Fact]
    public void Fit_WithValidation_RunsEachDelegateInHookOrderWithItsArguments()
    {
        using var root = new TempDirectory();
        var calls = new List<string>();
        var model = new EvaluatedModel();
        var train = RandomBatches.Create(2, seed: 1);
        var val = RandomBatches.Create(1, seed: 2);
        Trainer? seen = null;
        var losses = new List<double?>();

        void Note(Trainer trainer, LightningModule module, string name)
        {
            seen ??= trainer;
            Assert.Same(seen, trainer);
            Assert.Same(model, module);
            calls.Add(name);
        }

        var callback = new LambdaCallback(
            setup: (t, m, stage) => Note(t, m, $"setup:{stage}"),
            teardown: (t, m, stage) => Note(t, m, $"teardown:{stage}"),
            onFitStart: (t, m) => Note(t, m, "fit_start"),
            onFitEnd: (t, m) => Note(t, m, "fit_end"),
            onSanityCheckStart: (t, m) => Note(t, m, "sanity_start"),
            onSanityCheckEnd: (t, m) => Note(t, m, "sanity_end"),
            onTrainStart: (t, m) => Note(t, m, "train_start"),
            onTrainEnd: (t, m) => Note(t, m, "train_end"),
            onTrainEpochStart: (t, m) => Note(t, m, $"train_epoch_start:{t.CurrentEpoch}"),
            onTrainEpochEnd: (t, m) => Note(t, m, $"train_epoch_end:{t.CurrentEpoch}"),
            onTrainBatchStart: (t, m, batch, idx) =>
            {
                Assert.Same(train[idx], batch);
                Note(t, m, $"train_batch_start:{idx}");
            },
            onTrainBatchEnd: (t, m, loss, batch, idx) =>
            {
                Assert.Same(train[idx], batch);
                Assert.Equal(t.LastTrainLoss, loss);
                losses.Add(loss);
                Note(t, m, $"train_batch_end:{idx}:step={t.GlobalStep}");
            },
            onValidationStart: (t, m) => Note(t, m, "val_start"),
            onValidationEnd: (t, m) => Note(t, m, "val_end"),
            onValidationEpochStart: (t, m) => Note(t, m, "val_epoch_start"),
            onValidationEpochEnd: (t, m) => Note(t, m, "val_epoch_end"),
            onValidationBatchStart: (t, m, batch, idx) =>
            {
                Assert.Same(val[idx], batch);
                Note(t, m, $"val_batch_start:{idx}");
            },
            onValidationBatchEnd: (t, m, batch, idx) => Note(t, m, $"val_batch_end:{idx}"),
            onBeforeZeroGrad: (t, m, optimizer) =>
            {
                Assert.Same(t.Optimizers[0], optimizer);
                Note(t, m, "before_zero_grad");
            },
            onBeforeBackward: (t, m, loss) =>
            {
                Assert.True(loss.requires_grad);
                Note(t, m, "before_backward");
            },
            onAfterBackward: (t, m) => Note(t, m, "after_backward"),
            onBeforeOptimizerStep: (t, m, optimizer) =>
            {
                Assert.Same(t.Optimizers[0], optimizer);
                Note(t, m, "before_optimizer_step");
            });
        var trainer = new Trainer(TestTrainer.Quiet(root, callback) with { MaxEpochs = 1, NumSanityValSteps = 1 });

        trainer.Fit(model, train, val);

        string[] Validation() => ["val_start", "val_epoch_start", "val_batch_start:0", "val_batch_end:0", "val_epoch_end", "val_end"];
        string[] Batch(int idx) =>
        [
            $"train_batch_start:{idx}", "before_zero_grad", "before_backward", "after_backward", "before_optimizer_step",
            $"train_batch_end:{idx}:step={idx + 1}",
        ];
        string[] expected =
        [
            "setup:Fit", "fit_start", "sanity_start", .. Validation(), "sanity_end",
            "train_start", "train_epoch_start:0", .. Batch(0), .. Batch(1), .. Validation(), "train_epoch_end:0",
            "train_end", "fit_end", "teardown:Fit",
        ];
        Assert.Equal(expected, calls);
        Assert.Equal(2, losses.Count);
        Assert.All(losses, loss => Assert.True(loss > 0));
    }

    [Fact]
    public void TestAndPredict_RunTheirDelegatesWithPredictions()
    {
        using var root = new TempDirectory();
        var calls = new List<string>();
        var batchPredictions = new List<float[]>();
        IReadOnlyList<Tensor>? epochPredictions = null;
        var callback = new LambdaCallback(
            onTestStart: (_, _) => calls.Add("test_start"),
            onTestEpochStart: (_, _) => calls.Add("test_epoch_start"),
            onTestBatchStart: (_, _, _, idx) => calls.Add($"test_batch_start:{idx}"),
            onTestBatchEnd: (_, _, _, idx) => calls.Add($"test_batch_end:{idx}"),
            onTestEpochEnd: (_, _) => calls.Add("test_epoch_end"),
            onTestEnd: (_, _) => calls.Add("test_end"),
            onPredictStart: (_, _) => calls.Add("predict_start"),
            onPredictEpochStart: (_, _) => calls.Add("predict_epoch_start"),
            onPredictBatchStart: (_, _, _, idx) => calls.Add($"predict_batch_start:{idx}"),
            onPredictBatchEnd: (_, _, prediction, _, idx) =>
            {
                batchPredictions.Add(prediction.data<float>().ToArray());
                calls.Add($"predict_batch_end:{idx}");
            },
            onPredictEpochEnd: (_, _, predictions) =>
            {
                epochPredictions = predictions;
                calls.Add("predict_epoch_end");
            },
            onPredictEnd: (_, _) => calls.Add("predict_end"));
        var trainer = new Trainer(TestTrainer.Quiet(root, callback) with { EnableCheckpointing = true });
        var model = new EvaluatedModel();

        trainer.Test(model, RandomBatches.Create(2));
        var predictions = trainer.Predict(model, RandomBatches.Create(2, seed: 3));

        Assert.Equal(new[]
        {
            "test_start", "test_epoch_start", "test_batch_start:0", "test_batch_end:0", "test_batch_start:1", "test_batch_end:1",
            "test_epoch_end", "test_end",
            "predict_start", "predict_epoch_start", "predict_batch_start:0", "predict_batch_end:0", "predict_batch_start:1",
            "predict_batch_end:1", "predict_epoch_end", "predict_end",
        }, calls);
        Assert.Equal(2, predictions.Count);
        Assert.Equal(predictions, epochPredictions);
        for (int i = 0; i < 2; i++) Assert.Equal(predictions[i].data<float>().ToArray(), batchPredictions[i]);
    }

    [Fact]
    public void Fit_WhenTrainingFails_RunsOnExceptionWithTheException()
    {
        using var root = new TempDirectory();
        Exception? seen = null;
        var trainer = new Trainer(TestTrainer.Quiet(root) with { MaxEpochs = 1, Callbacks = [new LambdaCallback(onException: (_, _, exception) => seen = exception)] });

        var thrown = Assert.Throws<InvalidOperationException>(() => trainer.Fit(new FailingModel(), RandomBatches.Create(3)));

        Assert.Same(thrown, seen);
    }

    [Fact]
    public void SaveCheckpointAndResume_RunTheCheckpointDelegates()
    {
        using var root = new TempDirectory();
        var path = root.Combine("epoch.ckpt");
        var saved = new List<Checkpoint>();
        var loaded = new List<Checkpoint>();
        var callback = new LambdaCallback(
            onTrainEpochEnd: (t, _) => t.SaveCheckpoint(path),
            onSaveCheckpoint: (_, _, checkpoint) => saved.Add(checkpoint),
            onLoadCheckpoint: (_, _, checkpoint) => loaded.Add(checkpoint));
        TrainerOptions Options(int epochs) => TestTrainer.Quiet(root, callback) with { MaxEpochs = epochs };

        new Trainer(Options(1)).Fit(new BoringModel(), RandomBatches.Create(2));
        Assert.Single(saved);
        Assert.Empty(loaded);

        new Trainer(Options(2)).Fit(new BoringModel(), RandomBatches.Create(2), ckptPath: path);
        Assert.Equal(2, saved.Count);
        var restored = Assert.Single(loaded);
        Assert.Equal(0, restored.Epoch);
        Assert.Equal(2, restored.GlobalStep);
    }

    private sealed class EvaluatedModel : BoringModel
    {
        public override void ValidationStep(Tensor batch, int batchIdx) => Log("val_loss", forward(batch).sum());

        public override void TestStep(Tensor batch, int batchIdx) => Log("test_loss", forward(batch).sum());

        public override Tensor PredictStep(Tensor batch, int batchIdx) => forward(batch);
    }

    private sealed class FailingModel : BoringModel
    {
        public override Tensor? TrainingStep(Tensor batch, int batchIdx) =>
            batchIdx == 1 ? throw new InvalidOperationException("boom") : base.TrainingStep(batch, batchIdx);
    }
}
