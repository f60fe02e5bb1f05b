using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.GpuCheck;

/// <summary>
/// The checks' module: a small MLP regressor that records where and in which dtype its steps ran, and can inject an
/// inf into one step's loss to test the GradScaler. Public with a parameterless constructor for LoadFromCheckpoint.
/// </summary>
public sealed class Net : LightningModule<IList<Tensor>>
{
    public const int Inputs = 32, Outputs = 4;

    public Net() : base(nameof(Net))
    {
        Body = nn.Sequential(nn.Linear(Inputs, 64), nn.ReLU(), nn.Linear(64, Outputs));
        RegisterComponents();
    }

    /// <summary>The layers, for the ONNX export.</summary>
    public nn.Module<Tensor, Tensor> Body { get; }

    /// <summary>The batch index (in the first epoch) whose loss is multiplied by infinity; -1 for none.</summary>
    public int InjectInfAt { get; init; } = -1;

    public DeviceType ParameterDevice => parameters().First().device_type;
    public ScalarType ParameterDtype => parameters().First().dtype;
    public DeviceType BatchDevice { get; private set; }
    public ScalarType OutputDtype { get; private set; }
    public List<double> Losses { get; } = [];

    /// <summary>The sum of every input this module trained on: tells the "ddp" ranks' shards apart.</summary>
    public double SeenChecksum { get; private set; }

    public double? ScaleBeforeInf { get; private set; }
    public double? ScaleAfterInf { get; private set; }
    public bool WeightsUnchangedOverInf { get; private set; }
    private List<Tensor>? _beforeInf;

    public Tensor forward(Tensor x) => Body.forward(x);

    public bool AllFinite() => parameters().All(p => p.isfinite().all().item<bool>());

    public override Tensor? TrainingStep(IList<Tensor> batch, int batchIdx)
    {
        BatchDevice = batch[0].device_type;
        SeenChecksum += batch[0].sum().item<float>();
        var injecting = Trainer!.CurrentEpoch == 0 && batchIdx == InjectInfAt;
        if (injecting)
        {
            ScaleBeforeInf = Scale();
            _beforeInf = parameters().Select(p => p.detach().clone()).ToList();
        }
        else if (_beforeInf is not null)
        {
            ScaleAfterInf = Scale();
            WeightsUnchangedOverInf = parameters().Zip(_beforeInf, (p, q) => p.detach().eq(q).all().item<bool>()).All(same => same);
            _beforeInf = null;
        }
        var output = forward(batch[0]);
        OutputDtype = output.dtype;
        var loss = nn.functional.mse_loss(output.to(ScalarType.Float32), batch[1]);
        if (injecting) loss = loss * double.PositiveInfinity;
        Losses.Add(loss.item<float>());
        return loss;
    }

    private double? Scale() => (double?)Trainer!.Strategy.Precision.SaveState()?["scale"];

    public override OptimizerConfiguration ConfigureOptimizers() => optim.Adam(parameters(), 1e-2);
}
