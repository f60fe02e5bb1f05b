// Checks the CUDA paths of Lightning.Core on a machine with a GPU; run through scripts/gpu-check.sh.
using Lightning;
using Lightning.Precision;
using TorchSharp;
using static TorchSharp.torch;

var failures = 0;
void Check(string what, bool ok, string detail = "")
{
    Console.WriteLine($"{(ok ? "ok  " : "FAIL")} {what}{(detail.Length > 0 ? $" ({detail})" : "")}");
    if (!ok) failures++;
}

Check("CUDA is available", cuda.is_available(), $"{(cuda.is_available() ? cuda.device_count() : 0)} device(s)");
if (!cuda.is_available()) return 1;

var trainer = new Trainer(new TrainerOptions { Accelerator = "auto", MaxEpochs = 1, EnableProgressBar = false, EnableModelSummary = false, EnableCheckpointing = false, Loggers = [] });
Check("Accelerator \"auto\" picks CUDA", trainer.RootDevice.type == DeviceType.CUDA);

var model = new Probe();
var batches = Enumerable.Range(0, 8).Select(_ => randn(16, 32)).ToList();
trainer.Fit(model, batches);
Check("module and batches move to the GPU", model.ParameterDevice == DeviceType.CUDA && model.BatchDevice == DeviceType.CUDA);

using (Autocast.Enable(DeviceType.CUDA, ScalarType.Float16))
{
    var layer = nn.Linear(8, 4).to(CUDA);
    Check("CUDA autocast: Linear runs in float16", layer.forward(randn(2, 8, device: CUDA)).dtype == ScalarType.Float16);
}

var mixed = new Trainer(new TrainerOptions { Accelerator = "cuda", Precision = "16-mixed", MaxEpochs = 1, EnableProgressBar = false, EnableModelSummary = false, EnableCheckpointing = false, Loggers = [] });
var scaled = new Probe();
mixed.Fit(scaled, batches);
Check("\"16-mixed\" on CUDA trains in float16 with loss scaling", mixed.Precision == "16-mixed" && scaled.OutputDtype == ScalarType.Float16
    && scaled.parameters().All(p => p.isfinite().all().item<bool>()));

var devices = cuda.device_count();
Console.WriteLine(devices > 1
    ? $"skip data parallel over {devices} GPUs: \"dp\" runs on CPU replicas only so far"
    : "skip data parallel: one GPU");
return failures == 0 ? 0 : 1;

sealed class Probe : LightningModule<Tensor>
{
    private readonly TorchSharp.Modules.Linear layer = nn.Linear(32, 2);
    public Probe() : base(nameof(Probe)) => RegisterComponents();
    public DeviceType ParameterDevice => layer.weight!.device_type;
    public DeviceType BatchDevice { get; private set; }
    public ScalarType OutputDtype { get; private set; }
    public override Tensor? TrainingStep(Tensor batch, int batchIdx)
    {
        BatchDevice = batch.device_type;
        var output = layer.forward(batch);
        OutputDtype = output.dtype;
        return nn.functional.mse_loss(output.to(ScalarType.Float32), zeros(batch.shape[0], 2, device: batch.device));
    }
    public override OptimizerConfiguration ConfigureOptimizers() => optim.SGD(parameters(), 0.01);
}
