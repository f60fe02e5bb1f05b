using System.Text.Json.Nodes;
using Lightning.Checkpoints;
using Lightning.Testing;
using static TorchSharp.torch;

namespace Lightning.Core.Tests;

public class DataModuleTests
{
    private static TrainerOptions Quiet(TempDirectory root) => TestTrainer.Quiet(root) with { NumSanityValSteps = 0 };

    [Fact]
    public void DataModule_DrivesEveryStage_AndItsStateAndHparamsGoIntoCheckpoints()
    {
        using var root = new TempDirectory();
        var path = root.Combine("dm.ckpt");
        var data = new RandomDataModule(batches: 3) { Cursor = 41 };
        var model = new EvaluatingModel();
        var trainer = new Trainer(Quiet(root) with { MaxEpochs = 1 });

        trainer.Fit(model, data);
        trainer.SaveCheckpoint(path);
        var validation = trainer.Validate(model, data);
        var test = trainer.Test(model, data);
        var predictions = trainer.Predict(model, data);

        Assert.Equal(3, trainer.GlobalStep);
        Assert.True(validation.ContainsKey("val_loss"));
        Assert.True(test.ContainsKey("test_loss"));
        Assert.Equal(3, predictions.Count);
        Assert.All(predictions, p => Assert.Equal(new long[] { 2, 2 }, p.shape));
        Assert.Equal(new[] { "prepare", "setup:Fit", "teardown:Fit", "prepare", "setup:Validate", "teardown:Validate",
            "prepare", "setup:Test", "teardown:Test", "prepare", "setup:Predict", "teardown:Predict" }, data.Calls);

        var checkpoint = Checkpoint.Load(path);
        Assert.Equal(41, (int)checkpoint.DataModule!["cursor"]!);
        Assert.Equal(3, checkpoint.DataModuleHyperparameters["batches"].GetInt32());

        var restored = new RandomDataModule(batches: 3);
        new Trainer(Quiet(root) with { MaxEpochs = 2 }).Fit(new EvaluatingModel(), restored, ckptPath: path);
        Assert.Equal(41, restored.Cursor);
    }

    private sealed class EvaluatingModel : BoringModel
    {
        public override void ValidationStep(Tensor batch, int batchIdx) => Log("val_loss", nn.functional.mse_loss(forward(batch), ones(batch.shape[0], 2)));
        public override void TestStep(Tensor batch, int batchIdx) => Log("test_loss", nn.functional.mse_loss(forward(batch), ones(batch.shape[0], 2)));
        public override Tensor PredictStep(Tensor batch, int batchIdx) => forward(batch);
    }

    private sealed class RandomDataModule : LightningDataModule<Tensor>
    {
        private readonly int _batches;

        public RandomDataModule(int batches)
        {
            _batches = batches;
            SaveHyperparameters(new { batches });
        }

        public int Cursor { get; set; }
        public List<string> Calls { get; } = [];

        public override void PrepareData() => Calls.Add("prepare");
        public override void Setup(Stage stage) => Calls.Add($"setup:{stage}");
        public override void Teardown(Stage stage) => Calls.Add($"teardown:{stage}");
        public override IEnumerable<Tensor> TrainDataLoader() => RandomBatches.Create(_batches);
        public override IEnumerable<Tensor>? ValDataLoader() => RandomBatches.Create(_batches, seed: 1);
        public override IEnumerable<Tensor> TestDataLoader() => RandomBatches.Create(_batches, seed: 2);
        public override IEnumerable<Tensor> PredictDataLoader() => RandomBatches.Create(_batches, seed: 3);
        public override JsonObject SaveState() => new() { ["cursor"] = Cursor };
        public override void LoadState(JsonObject state) => Cursor = (int)state["cursor"]!;
    }
}
