// Your own training loop, with Fabric handling device, precision and checkpoints:
// dotnet run --project samples/FabricLoop -- [precision, default bf16-mixed]
using System.Globalization;
using Lightning;
using Lightning.Data;
using TorchSharp;
using static TorchSharp.torch;

var precision = args.FirstOrDefault() ?? "bf16-mixed";
Fabric.SeedEverything(42);
var fabric = new Fabric(new FabricOptions { Precision = precision });
Console.WriteLine($"Fabric on {fabric.Device.type} with {fabric.Precision}");

var model = fabric.Setup(nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 128), nn.ReLU(), nn.Linear(128, 10)));
var optimizer = fabric.SetupOptimizer(optim.Adam(model.parameters(), 1e-3));
// A missing dataset is one line with the fix (the exception's message), not a stack trace.
FashionMnist train;
try { train = new FashionMnist(train: true); }
catch (FileNotFoundException e) { Console.Error.WriteLine($"error: {e.Message}"); return 1; }
using var _ = train;
using var loader = utils.data.DataLoader(train, 64, new EpochShuffler(train.Count), disposeDataset: false);

int step = 0;
foreach (var batch in fabric.SetupDataLoader(loader).Take(300))
{
    using var scope = NewDisposeScope();
    Tensor loss;
    using (fabric.Autocast())
        loss = nn.functional.cross_entropy(model.forward(batch[0]), batch[1]);
    optimizer.zero_grad();
    fabric.Backward(loss);
    fabric.ClipGradients(optimizer, maxNorm: 1.0);
    fabric.Step(optimizer);
    if (++step % 100 == 0) Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"step {step}: loss {loss.ToDouble():0.0000}"));
}

fabric.Save("fabric.ckpt", new Dictionary<string, object> { ["model"] = model, ["optimizer"] = optimizer, ["step"] = step });
using var test = new FashionMnist(train: false);
using (no_grad())
{
    var correct = 0L;
    foreach (var batch in fabric.SetupDataLoader(utils.data.DataLoader(test, 1000, shuffle: false, disposeDataset: false)))
    {
        using var scope = NewDisposeScope();
        using (fabric.Autocast()) correct += model.forward(batch[0]).argmax(1).eq(batch[1]).sum().ToInt64();
    }
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"test accuracy after {step} steps: {correct / (double)test.Count:0.0000}"));
}
Console.WriteLine("saved fabric.ckpt (model, optimizer, step)");
return 0;
