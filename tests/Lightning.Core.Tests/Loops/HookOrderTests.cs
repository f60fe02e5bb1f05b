using Lightning.Callbacks;
using Lightning.Testing;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Loops;

public class HookOrderTests
{
    [Fact]
    public void Fit_WithValidation_CallsHooksInLightningsOrder()
    {
        using var root = new TempDirectory();
        var calls = new List<string>();
        var trainer = new Trainer(TestTrainer.Quiet(root) with { MaxEpochs = 1, LimitTrainBatches = 2, LimitValBatches = 1, NumSanityValSteps = 1, Callbacks = [new RecordingCallback(calls)] });

        trainer.Fit(new RecordingModel(calls), RandomBatches.Create(4), RandomBatches.Create(2));

        string[] Validation() =>
        [
            "on_validation_model_eval", "Callback.on_validation_start", "on_validation_start",
            "Callback.on_validation_epoch_start", "on_validation_epoch_start",
            "Callback.on_validation_batch_start", "on_validation_batch_start", "validation_step",
            "Callback.on_validation_batch_end", "on_validation_batch_end",
            "Callback.on_validation_epoch_end", "on_validation_epoch_end",
            "Callback.on_validation_end", "on_validation_end", "on_validation_model_train",
        ];
        string[] TrainBatch() =>
        [
            "Callback.on_train_batch_start", "on_train_batch_start", "training_step",
            "Callback.on_before_zero_grad", "on_before_zero_grad", "optimizer_zero_grad",
            "Callback.on_before_backward", "on_before_backward", "backward", "Callback.on_after_backward", "on_after_backward",
            "Callback.on_before_optimizer_step", "on_before_optimizer_step", "configure_gradient_clipping", "optimizer_step",
            "Callback.on_train_batch_end", "on_train_batch_end",
        ];
        string[] expected =
        [
            "Callback.setup", "setup", "configure_optimizers", "Callback.on_fit_start", "on_fit_start",
            "Callback.on_sanity_check_start", .. Validation(), "Callback.on_sanity_check_end",
            "Callback.on_train_start", "on_train_start", "Callback.on_train_epoch_start", "on_train_epoch_start",
            .. TrainBatch(), .. TrainBatch(), .. Validation(),
            "Callback.on_train_epoch_end", "on_train_epoch_end",
            "Callback.on_train_end", "on_train_end", "Callback.on_fit_end", "on_fit_end", "Callback.teardown", "teardown",
        ];
        Assert.Equal(expected, calls);
    }

    [Fact]
    public void TestAndPredict_CallTheirHooksInOrder()
    {
        using var root = new TempDirectory();
        var calls = new List<string>();
        var trainer = new Trainer(TestTrainer.Quiet(root) with { EnableCheckpointing = true, Callbacks = [new RecordingCallback(calls)] });
        var model = new RecordingModel(calls);

        trainer.Test(model, RandomBatches.Create(1));
        Assert.Equal(new[]
        {
            "Callback.setup", "setup", "on_test_model_eval", "Callback.on_test_start", "on_test_start",
            "Callback.on_test_epoch_start", "on_test_epoch_start", "Callback.on_test_batch_start", "on_test_batch_start", "test_step",
            "Callback.on_test_batch_end", "on_test_batch_end", "Callback.on_test_epoch_end", "on_test_epoch_end",
            "Callback.on_test_end", "on_test_end", "on_test_model_train", "Callback.teardown", "teardown",
        }, calls);

        calls.Clear();
        var predictions = trainer.Predict(model, RandomBatches.Create(1));
        Assert.Equal(new[]
        {
            "Callback.setup", "setup", "on_predict_model_eval", "Callback.on_predict_start", "on_predict_start",
            "Callback.on_predict_epoch_start", "on_predict_epoch_start", "Callback.on_predict_batch_start", "on_predict_batch_start",
            "predict_step", "Callback.on_predict_batch_end", "on_predict_batch_end", "Callback.on_predict_epoch_end",
            "on_predict_epoch_end", "Callback.on_predict_end", "on_predict_end", "Callback.teardown", "teardown",
        }, calls);
        Assert.Single(predictions);
    }

    private sealed class RecordingModel(List<string> calls) : BoringModel
    {
        public override OptimizerConfiguration ConfigureOptimizers() { calls.Add("configure_optimizers"); return base.ConfigureOptimizers(); }
        public override void Setup(Stage stage) => calls.Add("setup");
        public override void Teardown(Stage stage) => calls.Add("teardown");
        public override void OnFitStart() => calls.Add("on_fit_start");
        public override void OnFitEnd() => calls.Add("on_fit_end");
        public override void OnTrainStart() => calls.Add("on_train_start");
        public override void OnTrainEnd() => calls.Add("on_train_end");
        public override void OnTrainEpochStart() => calls.Add("on_train_epoch_start");
        public override void OnTrainEpochEnd() => calls.Add("on_train_epoch_end");
        public override bool OnTrainBatchStart(Tensor batch, int batchIdx) { calls.Add("on_train_batch_start"); return true; }
        public override void OnTrainBatchEnd(double? loss, Tensor batch, int batchIdx) => calls.Add("on_train_batch_end");
        public override Tensor? TrainingStep(Tensor batch, int batchIdx) { calls.Add("training_step"); return base.TrainingStep(batch, batchIdx); }
        public override void ValidationStep(Tensor batch, int batchIdx) => calls.Add("validation_step");
        public override void TestStep(Tensor batch, int batchIdx) => calls.Add("test_step");
        public override Tensor PredictStep(Tensor batch, int batchIdx) { calls.Add("predict_step"); return forward(batch); }
        public override void OnValidationModelEval() { calls.Add("on_validation_model_eval"); base.OnValidationModelEval(); }
        public override void OnValidationModelTrain() { calls.Add("on_validation_model_train"); base.OnValidationModelTrain(); }
        public override void OnValidationStart() => calls.Add("on_validation_start");
        public override void OnValidationEnd() => calls.Add("on_validation_end");
        public override void OnValidationEpochStart() => calls.Add("on_validation_epoch_start");
        public override void OnValidationEpochEnd() => calls.Add("on_validation_epoch_end");
        public override void OnValidationBatchStart(Tensor batch, int batchIdx) => calls.Add("on_validation_batch_start");
        public override void OnValidationBatchEnd(Tensor batch, int batchIdx) => calls.Add("on_validation_batch_end");
        public override void OnTestModelEval() { calls.Add("on_test_model_eval"); base.OnTestModelEval(); }
        public override void OnTestModelTrain() { calls.Add("on_test_model_train"); base.OnTestModelTrain(); }
        public override void OnTestStart() => calls.Add("on_test_start");
        public override void OnTestEnd() => calls.Add("on_test_end");
        public override void OnTestEpochStart() => calls.Add("on_test_epoch_start");
        public override void OnTestEpochEnd() => calls.Add("on_test_epoch_end");
        public override void OnTestBatchStart(Tensor batch, int batchIdx) => calls.Add("on_test_batch_start");
        public override void OnTestBatchEnd(Tensor batch, int batchIdx) => calls.Add("on_test_batch_end");
        public override void OnPredictModelEval() { calls.Add("on_predict_model_eval"); base.OnPredictModelEval(); }
        public override void OnPredictStart() => calls.Add("on_predict_start");
        public override void OnPredictEnd() => calls.Add("on_predict_end");
        public override void OnPredictEpochStart() => calls.Add("on_predict_epoch_start");
        public override void OnPredictEpochEnd() => calls.Add("on_predict_epoch_end");
        public override void OnPredictBatchStart(Tensor batch, int batchIdx) => calls.Add("on_predict_batch_start");
        public override void OnPredictBatchEnd(Tensor prediction, Tensor batch, int batchIdx) => calls.Add("on_predict_batch_end");
        public override void OnBeforeZeroGrad(optim.Optimizer optimizer) => calls.Add("on_before_zero_grad");
        public override void OptimizerZeroGrad(int epoch, int batchIdx, optim.Optimizer optimizer) { calls.Add("optimizer_zero_grad"); base.OptimizerZeroGrad(epoch, batchIdx, optimizer); }
        public override void OnBeforeBackward(Tensor loss) => calls.Add("on_before_backward");
        public override void Backward(Tensor loss) { calls.Add("backward"); base.Backward(loss); }
        public override void OnAfterBackward() => calls.Add("on_after_backward");
        public override void OnBeforeOptimizerStep(optim.Optimizer optimizer) => calls.Add("on_before_optimizer_step");
        public override void ConfigureGradientClipping(optim.Optimizer optimizer, double? clipVal, GradientClipAlgorithm algorithm) => calls.Add("configure_gradient_clipping");
        public override void OptimizerStep(int epoch, int batchIdx, LightningOptimizer optimizer, Func<Tensor?> closure)
        {
            base.OptimizerStep(epoch, batchIdx, optimizer, closure);
            calls.Add("optimizer_step");
        }
    }

    private sealed class RecordingCallback(List<string> calls) : Callback
    {
        private void Add(string hook) => calls.Add("Callback." + hook);
        public override void Setup(Trainer trainer, LightningModule module, Stage stage) => Add("setup");
        public override void Teardown(Trainer trainer, LightningModule module, Stage stage) => Add("teardown");
        public override void OnFitStart(Trainer trainer, LightningModule module) => Add("on_fit_start");
        public override void OnFitEnd(Trainer trainer, LightningModule module) => Add("on_fit_end");
        public override void OnSanityCheckStart(Trainer trainer, LightningModule module) => Add("on_sanity_check_start");
        public override void OnSanityCheckEnd(Trainer trainer, LightningModule module) => Add("on_sanity_check_end");
        public override void OnTrainStart(Trainer trainer, LightningModule module) => Add("on_train_start");
        public override void OnTrainEnd(Trainer trainer, LightningModule module) => Add("on_train_end");
        public override void OnTrainEpochStart(Trainer trainer, LightningModule module) => Add("on_train_epoch_start");
        public override void OnTrainEpochEnd(Trainer trainer, LightningModule module) => Add("on_train_epoch_end");
        public override void OnTrainBatchStart(Trainer trainer, LightningModule module, object? batch, int batchIdx) => Add("on_train_batch_start");
        public override void OnTrainBatchEnd(Trainer trainer, LightningModule module, double? loss, object? batch, int batchIdx) => Add("on_train_batch_end");
        public override void OnValidationStart(Trainer trainer, LightningModule module) => Add("on_validation_start");
        public override void OnValidationEnd(Trainer trainer, LightningModule module) => Add("on_validation_end");
        public override void OnValidationEpochStart(Trainer trainer, LightningModule module) => Add("on_validation_epoch_start");
        public override void OnValidationEpochEnd(Trainer trainer, LightningModule module) => Add("on_validation_epoch_end");
        public override void OnValidationBatchStart(Trainer trainer, LightningModule module, object? batch, int batchIdx) => Add("on_validation_batch_start");
        public override void OnValidationBatchEnd(Trainer trainer, LightningModule module, object? batch, int batchIdx) => Add("on_validation_batch_end");
        public override void OnTestStart(Trainer trainer, LightningModule module) => Add("on_test_start");
        public override void OnTestEnd(Trainer trainer, LightningModule module) => Add("on_test_end");
        public override void OnTestEpochStart(Trainer trainer, LightningModule module) => Add("on_test_epoch_start");
        public override void OnTestEpochEnd(Trainer trainer, LightningModule module) => Add("on_test_epoch_end");
        public override void OnTestBatchStart(Trainer trainer, LightningModule module, object? batch, int batchIdx) => Add("on_test_batch_start");
        public override void OnTestBatchEnd(Trainer trainer, LightningModule module, object? batch, int batchIdx) => Add("on_test_batch_end");
        public override void OnPredictStart(Trainer trainer, LightningModule module) => Add("on_predict_start");
        public override void OnPredictEnd(Trainer trainer, LightningModule module) => Add("on_predict_end");
        public override void OnPredictEpochStart(Trainer trainer, LightningModule module) => Add("on_predict_epoch_start");
        public override void OnPredictEpochEnd(Trainer trainer, LightningModule module, IReadOnlyList<Tensor> predictions) => Add("on_predict_epoch_end");
        public override void OnPredictBatchStart(Trainer trainer, LightningModule module, object? batch, int batchIdx) => Add("on_predict_batch_start");
        public override void OnPredictBatchEnd(Trainer trainer, LightningModule module, Tensor prediction, object? batch, int batchIdx) => Add("on_predict_batch_end");
        public override void OnBeforeZeroGrad(Trainer trainer, LightningModule module, optim.Optimizer optimizer) => Add("on_before_zero_grad");
        public override void OnBeforeBackward(Trainer trainer, LightningModule module, Tensor loss) => Add("on_before_backward");
        public override void OnAfterBackward(Trainer trainer, LightningModule module) => Add("on_after_backward");
        public override void OnBeforeOptimizerStep(Trainer trainer, LightningModule module, optim.Optimizer optimizer) => Add("on_before_optimizer_step");
    }
}
