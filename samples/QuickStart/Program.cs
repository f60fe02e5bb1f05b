using System.Globalization;
using Lightning;
using Lightning.Data;
using Lightning.Onnx;
using Microsoft.ML.OnnxRuntime;
using QuickStart;
using TorchSharp;
using static TorchSharp.torch;

// define any number of nn.Modules (or use your current ones)
var encoder = nn.Sequential(nn.Linear(28 * 28, 64), nn.ReLU(), nn.Linear(64, 3));
var decoder = nn.Sequential(nn.Linear(3, 64), nn.ReLU(), nn.Linear(64, 28 * 28));

// init the autoencoder
var autoencoder = new LitAutoEncoder(encoder, decoder);

// setup data: Fashion-MNIST from the path given, $LIGHTNING_DATA or /usr/share/datasets/fashion-mnist
// A missing dataset is one line with the fix (the exception's message), not a stack trace.
FashionMnist dataset;
try { dataset = new FashionMnist(root: args.FirstOrDefault()); }
catch (FileNotFoundException e) { Console.Error.WriteLine($"error: {e.Message}"); return 1; }
using var _ = dataset;
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
        Console.WriteLine(Row(embeddings[i].data<float>().ToArray()));
    Console.WriteLine(new string('⚡', 20));

    // export the encoder for production and embed the same images with ONNX Runtime
    trainedEncoder.ToOnnx("encoder.onnx", fakeImageBatch);
    using var session = new InferenceSession("encoder.onnx");
    using var input = OrtValue.CreateTensorValueFromMemory(fakeImageBatch.data<float>().ToArray(), fakeImageBatch.shape);
    using var runOptions = new RunOptions();
    using var outputs = session.Run(runOptions, session.InputNames, [input], session.OutputNames);
    var onnxEmbeddings = outputs[0].GetTensorDataAsSpan<float>().ToArray();
    var width = (int)embeddings.shape[1];
    Console.WriteLine($"ONNX export: encoder.onnx ({session.ModelMetadata.ProducerName}, input '{session.InputNames[0]}' [batch, 784])");
    Console.WriteLine($"{"TorchSharp",-28}ONNX Runtime");
    for (int i = 0; i < embeddings.shape[0]; i++)
        Console.WriteLine($"{Row(embeddings[i].data<float>().ToArray()),-28}{Row(onnxEmbeddings[(i * width)..((i + 1) * width)])}");
    var difference = embeddings.data<float>().ToArray().Zip(onnxEmbeddings, (a, b) => Math.Abs(a - b)).Max();
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"max |TorchSharp - ONNX Runtime| = {difference:0.0e+0}"));
}

Console.WriteLine($"TensorBoard logs: {Path.GetRelativePath(Directory.GetCurrentDirectory(), trainer.LogDir!)}");
Console.WriteLine("View them with: tensorboard --logdir .");
return 0;

static string Row(float[] values) =>
    string.Join("  ", values.Select(v => v.ToString("+0.0000;-0.0000", CultureInfo.InvariantCulture)));
