using System.Globalization;
using Lightning;
using Lightning.Data;
using QuickStart;
using TorchSharp;
using static TorchSharp.torch;

// define any number of nn.Modules (or use your current ones)
var encoder = nn.Sequential(nn.Linear(28 * 28, 64), nn.ReLU(), nn.Linear(64, 3));
var decoder = nn.Sequential(nn.Linear(3, 64), nn.ReLU(), nn.Linear(64, 28 * 28));

// init the autoencoder
var autoencoder = new LitAutoEncoder(encoder, decoder);

// setup data: Fashion-MNIST from the path given, $LIGHTNING_DATA or /usr/share/datasets/fashion-mnist
using var dataset = new FashionMnist(root: args.FirstOrDefault());
using var trainLoader = torch.utils.data.DataLoader(dataset, batchSize: 64, shuffle: true);

// train the model
var trainer = new Trainer(new TrainerOptions { LimitTrainBatches = 100, MaxEpochs = 1 });
trainer.Fit(autoencoder, trainLoader);

// load checkpoint
var checkpoint = trainer.CheckpointCallback!.BestModelPath!;
Console.WriteLine($"Checkpoint: {Path.GetRelativePath(Directory.GetCurrentDirectory(), checkpoint)}");
var loaded = LightningModule.LoadFromCheckpoint<LitAutoEncoder>(checkpoint, new { encoder, decoder });

// choose your trained nn.Module
var trainedEncoder = loaded.Encoder;
trainedEncoder.eval();

// embed 4 fake images!
using (no_grad())
{
    var fakeImageBatch = rand(4, 28 * 28);
    var embeddings = trainedEncoder.forward(fakeImageBatch);
    Console.WriteLine(new string('⚡', 20));
    Console.WriteLine("Predictions (4 image embeddings):");
    for (int i = 0; i < embeddings.shape[0]; i++)
        Console.WriteLine(string.Join("  ", embeddings[i].data<float>().ToArray().Select(v => v.ToString("+0.0000;-0.0000", CultureInfo.InvariantCulture))));
    Console.WriteLine(new string('⚡', 20));
}

Console.WriteLine($"TensorBoard logs: {Path.GetRelativePath(Directory.GetCurrentDirectory(), trainer.LogDir!)}");
Console.WriteLine("View them with: tensorboard --logdir .");
