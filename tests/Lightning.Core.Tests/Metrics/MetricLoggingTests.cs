using Lightning.Checkpoints;
using Lightning.Metrics;
using Lightning.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Metrics;

/// <summary>Log(name, metric) in a real Trainer run: step values from Forward, epoch values computed and reset; persistent state in checkpoints.</summary>
public class MetricLoggingTests
{
    private static readonly long[][] TrainBatches = [[0, 1, 2, 3, 4, 5], [6, 7, 8, 9, 10, 11]];
    private static readonly long[][] ValBatches = [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9, 10, 11]];

    /// <summary>
    /// Logs accuracy objects: per step and epoch in training (Forward), per epoch in validation (Update). Validation predicts
    /// perfectly in epoch 0, from MetricSamples' logits after, and everything wrong in the sanity check, so state that
    /// leaks from one epoch (or the sanity check) into the next changes the values.
    /// </summary>
    private sealed class LoggingModule : LightningModule<Tensor>
    {
        private readonly MetricSamples _samples = new();
        private readonly Accuracy _trainAccuracy = new(MetricTask.Multiclass, MetricSamples.Classes);
        private readonly Accuracy _valAccuracy = new(MetricTask.Multiclass, MetricSamples.Classes, MetricAverage.Macro);
        private readonly TorchSharp.Modules.Parameter _weight = nn.Parameter(zeros(1));

        public LoggingModule() : base(nameof(LoggingModule)) => RegisterComponents();

        public List<double> ValidationValues { get; } = [];
        public bool UpdateOnlyInTraining { get; init; }

        public override Tensor? TrainingStep(Tensor batch, int batchIdx)
        {
            var (preds, target) = (_samples.MulticlassLogits.index_select(0, batch), _samples.MulticlassTarget.index_select(0, batch));
            if (UpdateOnlyInTraining) _trainAccuracy.Update(preds, target);
            else _trainAccuracy.Forward(preds, target);
            Log("train_acc", _trainAccuracy, onStep: true, onEpoch: true);
            return _weight.sum();
        }

        public override void ValidationStep(Tensor batch, int batchIdx)
        {
            var target = _samples.MulticlassTarget.index_select(0, batch);
            var preds = Trainer!.SanityChecking ? target.add(1).remainder(MetricSamples.Classes)
                : Trainer.CurrentEpoch == 0 ? target : _samples.MulticlassLogits.index_select(0, batch);
            _valAccuracy.Update(preds, target);
            Log("val_acc", _valAccuracy);
        }

        public override void OnValidationEpochEnd()
        {
            if (!Trainer!.SanityChecking) ValidationValues.Add(Trainer.CallbackMetrics["val_acc"]);
        }

        public override OptimizerConfiguration ConfigureOptimizers() => optim.SGD(parameters(), 0.1);
    }

    private static IReadOnlyList<Tensor> Batches(long[][] indices) => indices.Select(i => tensor(i)).ToList();

    private static double Reference(Metric metric, MetricSamples samples, long[] indices)
    {
        using var index = tensor(indices);
        metric.Update(samples.MulticlassLogits.index_select(0, index), samples.MulticlassTarget.index_select(0, index));
        return metric.Compute().ToDouble();
    }

    [Fact]
    public void LoggedMetric_IsComputedAtEpochEnd_AndReset_StepValueIsTheBatchValue()
    {
        using var root = new TempDirectory();
        using var samples = new MetricSamples();
        var module = new LoggingModule();
        var trainer = new Trainer(TestTrainer.Quiet(root) with { MaxEpochs = 2, NumSanityValSteps = 1 });
        trainer.Fit(module, Batches(TrainBatches), Batches(ValBatches));

        var all = ValBatches.SelectMany(b => b).ToArray();
        var expectedVal = Reference(new Accuracy(MetricTask.Multiclass, MetricSamples.Classes, MetricAverage.Macro), samples, all);
        Assert.NotEqual(1.0, expectedVal);
        Assert.Equal(new[] { 1.0, expectedVal }, module.ValidationValues);

        var epochValue = Reference(new Accuracy(MetricTask.Multiclass, MetricSamples.Classes), samples, TrainBatches.SelectMany(b => b).ToArray());
        var lastBatchValue = Reference(new Accuracy(MetricTask.Multiclass, MetricSamples.Classes), samples, TrainBatches[^1]);
        Assert.NotEqual(epochValue, lastBatchValue);
        Assert.Equal(epochValue, trainer.CallbackMetrics["train_acc_epoch"], 12);
        Assert.Equal(lastBatchValue, trainer.CallbackMetrics["train_acc_step"], 12);
    }

    [Fact]
    public void LoggedPerStep_WithoutForward_SaysToCallForward()
    {
        using var root = new TempDirectory();
        var module = new LoggingModule { UpdateOnlyInTraining = true };
        var error = Assert.Throws<InvalidOperationException>(() =>
            new Trainer(TestTrainer.Quiet(root) with { MaxEpochs = 1, NumSanityValSteps = 0 }).Fit(module, Batches(TrainBatches)));
        Assert.Contains("Log('train_acc', Accuracy (multiclass)) with onStep = true", error.Message);
        Assert.Contains("Forward(preds, target)", error.Message);
    }

    [Fact]
    public void ConfusionMatrix_CannotBeLogged()
    {
        var module = new LoggingModule();
        var error = Assert.Throws<ArgumentException>(() => module.Log("cm", new ConfusionMatrix(MetricTask.Binary)));
        Assert.Contains("ConfusionMatrix (binary) computes a matrix", error.Message);
    }

    private sealed class HoldsMetrics : LightningModule<Tensor>
    {
        private readonly TorchSharp.Modules.Linear _layer = nn.Linear(2, 1);

        public HoldsMetrics() : base(nameof(HoldsMetrics))
        {
            RegisterComponents();
            Auroc.Persistent = true;
        }

        public Auroc Auroc { get; } = new(MetricTask.Binary);
        public MeanSquaredError Mse { get; } = new();

        public override Tensor? TrainingStep(Tensor batch, int batchIdx) => _layer.forward(batch).sum();
        public override OptimizerConfiguration ConfigureOptimizers() => optim.SGD(parameters(), 0.1);
    }

    // torchmetrics keeps state in state_dict only after persistent(True): the persistent AUROC's collected scores come back
    // from the checkpoint, the non-persistent MSE's sums do not.
    [Fact]
    public void PersistentMetricState_TravelsInCheckpoints_OthersDoNot()
    {
        using var root = new TempDirectory();
        var module = new HoldsMetrics();
        module.Auroc.Update(tensor(new[] { 0.1f, 0.4f, 0.35f, 0.8f }), tensor(new long[] { 0, 0, 1, 1 }));
        module.Mse.Update(tensor(new[] { 1f }), tensor(new[] { 3f }));
        var path = Path.Combine(root.Path, "metrics.ckpt");
        Checkpoint.Capture(module, [], epoch: 0, globalStep: 0, weightsOnly: false).Save(path);

        var loaded = LightningModule.LoadFromCheckpoint<HoldsMetrics>(path);
        Assert.Equal(0.75, loaded.Auroc.Compute().ToDouble(), 12);
        Assert.Equal(new[] { 0.1, 0.4, 0.35, 0.8 }, loaded.Auroc.States["preds"].data<double>().ToArray().Select(v => Math.Round(v, 6)));
        Assert.Equal(0, loaded.Mse.States["total"].ToInt64());
    }
}
