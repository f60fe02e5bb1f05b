using System.Globalization;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lightning.Testing;

/// <summary>
/// A small regressor for the "ddp" tests, built the same way by the MPI worker and by the single-process references.
/// Column 0 of a batch is an id (see <see cref="IndexedRows"/>), not a feature; the other 15 columns are.
/// </summary>
public sealed class Regressor : LightningModule<Tensor>
{
    private readonly Sequential net = nn.Sequential(nn.Linear(15, 32), nn.Tanh(), nn.Linear(32, 1));

    public Regressor() : base(nameof(Regressor)) => RegisterComponents();

    /// <summary>The first column of every training row seen, in order (rows built by <see cref="IndexedRows"/> carry their index there).</summary>
    public List<long> SeenRows { get; } = [];

    /// <summary>Predictions for the 15 feature columns.</summary>
    public Tensor forward(Tensor features) => net.forward(features);

    public override Tensor? TrainingStep(Tensor batch, int batchIdx)
    {
        SeenRows.AddRange(batch[.., 0].to(ScalarType.Int64).data<long>().ToArray());
        var x = batch[.., 1..];
        Log("input_mean", x.mean(), syncDist: true);
        var target = x.sum(1, keepdim: true);
        return nn.functional.mse_loss(net.forward(x).to(target.dtype), target);
    }

    public override void ValidationStep(Tensor batch, int batchIdx)
    {
        var x = batch[.., 1..];
        var target = x.sum(1, keepdim: true);
        Log("val_loss", nn.functional.mse_loss(net.forward(x), target), syncDist: true);
        Log("val_max", target.max(), reduceFx: ReduceFx.Max, syncDist: true);
    }

    public override OptimizerConfiguration ConfigureOptimizers() => optim.SGD(parameters(), 0.05);

    /// <summary>Every weight and buffer as one line "name v1 v2 …" (round-trip precision).</summary>
    public string WeightsText() => WeightsTextOf(this);

    /// <summary>Every weight and buffer of <paramref name="module"/> as one line "name v1 v2 …" (round-trip precision).</summary>
    public static string WeightsTextOf(nn.Module module) => string.Join("\n", module.state_dict().Select(p =>
        $"{p.Key} {string.Join(" ", p.Value.to(ScalarType.Float64).flatten().data<double>().ToArray().Select(v => v.ToString("R", CultureInfo.InvariantCulture)))}"));

    /// <summary>Loads weights written by <see cref="WeightsText"/>.</summary>
    public void LoadWeightsText(string text)
    {
        using var noGrad = no_grad();
        var state = state_dict();
        foreach (var (name, values) in ParseWeights(text))
            state[name].copy_(tensor(values).reshape(state[name].shape).to(state[name].dtype));
    }

    /// <summary>Asserts that every weight in <paramref name="actual"/> is within <paramref name="tolerance"/> of <paramref name="expected"/>'s (same names).</summary>
    public static void AssertClose(Dictionary<string, double[]> expected, Dictionary<string, double[]> actual, double tolerance)
    {
        Xunit.Assert.Equal(expected.Keys.Order(), actual.Keys.Order());
        foreach (var (name, values) in expected) Approx.AssertClose(values, actual[name], rtol: 0, atol: tolerance, what: name);
    }

    public static Dictionary<string, double[]> ParseWeights(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries)
        .Select(line => line.Split(' '))
        .ToDictionary(parts => parts[0], parts => parts.Skip(1).Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray());
}

/// <summary>
/// The regressor's network trained with a TorchSharp optimizer over two parameter groups (different rates, weight decay
/// on one), for the sharded-strategy tests: optionally with a per-step learning rate scheduler, by manual optimization,
/// or with an infinite gradient injected on one rank at one step (after backward, in the last parameter).
/// </summary>
public sealed class ShardingRegressor : LightningModule<Tensor>
{
    /// <summary>Every TorchSharp optimizer whose update is elementwise, by name.</summary>
    public static readonly string[] OptimizerNames = ["adam", "adamw", "sgd", "rmsprop", "adagrad", "adadelta", "adamax", "nadam", "radam", "asgd", "rprop"];

    private readonly Sequential net = nn.Sequential(nn.Linear(15, 32), nn.Tanh(), nn.Linear(32, 1));
    private readonly string _optimizer;
    private readonly bool _scheduler, _manual;
    private readonly (int Rank, long Step)? _inf;

    public ShardingRegressor(string optimizer = "adam", bool scheduler = false, bool manual = false, (int Rank, long Step)? inf = null)
        : base(nameof(ShardingRegressor))
    {
        (_optimizer, _scheduler, _manual, _inf) = (optimizer, scheduler, manual, inf);
        AutomaticOptimization = !manual;
        RegisterComponents();
    }

    public Tensor forward(Tensor features) => net.forward(features);

    public override Tensor? TrainingStep(Tensor batch, int batchIdx)
    {
        var x = batch[.., 1..];
        var target = x.sum(1, keepdim: true);
        var loss = nn.functional.mse_loss(net.forward(x).to(target.dtype), target);
        if (!_manual) return loss;
        var optimizer = Optimizers()[0];
        optimizer.ZeroGrad();
        ManualBackward(loss);
        ClipGradients(optimizer.Optimizer, 0.5);
        optimizer.Step();
        return loss;
    }

    public override void OnAfterBackward()
    {
        if (_inf is not { } inf || Trainer!.GlobalRank != inf.Rank || Trainer.GlobalStep != inf.Step) return;
        using var grad = net.parameters().Last().grad!;
        using var flat = grad.view(-1);
        flat[0] = float.PositiveInfinity;
    }

    public override OptimizerConfiguration ConfigureOptimizers()
    {
        var first = net.children().First().parameters().ToList();
        var rest = net.children().Skip(1).SelectMany(m => m.parameters()).ToList();
        optim.Optimizer optimizer = _optimizer switch
        {
            "adam" => optim.Adam([new Adam.ParamGroup(first, lr: 0.02), new Adam.ParamGroup(rest, lr: 0.01, weight_decay: 0.01)]),
            "adamw" => optim.AdamW([new AdamW.ParamGroup(first, lr: 0.02), new AdamW.ParamGroup(rest, lr: 0.01, weight_decay: 0.05)]),
            "sgd" => optim.SGD([new SGD.ParamGroup(first, lr: 0.02, momentum: 0.9), new SGD.ParamGroup(rest, lr: 0.01, momentum: 0.5, nesterov: true)], 0.02),
            "rmsprop" => optim.RMSProp([new RMSProp.ParamGroup(first, lr: 0.005, momentum: 0.5), new RMSProp.ParamGroup(rest, lr: 0.002, centered: true)]),
            "adagrad" => optim.Adagrad([new Adagrad.ParamGroup(first, lr: 0.05), new Adagrad.ParamGroup(rest, lr: 0.02, lr_decay: 0.01)]),
            "adadelta" => optim.Adadelta([new Adadelta.ParamGroup(first, lr: 1.0), new Adadelta.ParamGroup(rest, lr: 0.5, rho: 0.8)]),
            "adamax" => optim.Adamax([new Adamax.ParamGroup(first, lr: 0.02), new Adamax.ParamGroup(rest, lr: 0.01)]),
            "nadam" => optim.NAdam([new NAdam.ParamGroup(first, lr: 0.02), new NAdam.ParamGroup(rest, lr: 0.01)]),
            "radam" => optim.RAdam([new RAdam.ParamGroup(first, lr: 0.02), new RAdam.ParamGroup(rest, lr: 0.01)]),
            "asgd" => optim.ASGD([new ASGD.ParamGroup(first, lr: 0.02), new ASGD.ParamGroup(rest, lr: 0.01, t0: 5)]),
            "rprop" => optim.Rprop([new Rprop.ParamGroup(first, lr: 0.01), new Rprop.ParamGroup(rest, lr: 0.005)]),
            _ => throw new ArgumentOutOfRangeException(nameof(_optimizer), _optimizer, $"optimizers: {string.Join(", ", OptimizerNames)}"),
        };
        if (!_scheduler) return optimizer;
        return new OptimizerConfiguration(optimizer, new LrSchedulerConfig(optim.lr_scheduler.StepLR(optimizer, 3, 0.5), SchedulerInterval.Step));
    }

    public string WeightsText() => Regressor.WeightsTextOf(this);
}

/// <summary>Rows of 16 random features whose first column is the row's index, as a TorchSharp dataset.</summary>
public sealed class IndexedRows : torch.utils.data.Dataset<Tensor>
{
    private readonly Tensor _rows;

    public IndexedRows(int count, long seed)
    {
        using var generator = new Generator((ulong)seed);
        var rows = randn([count, 16], generator: generator);
        rows[.., 0] = arange(count, ScalarType.Float32);
        _rows = rows.DetachFromDisposeScope();
    }

    public override long Count => _rows.shape[0];

    public override Tensor GetTensor(long index) => _rows[index].clone();

    /// <summary>A TorchSharp data loader over these rows that stacks them into batches.</summary>
    public DataLoader<Tensor, Tensor> Loader(int batchSize, bool shuffle) =>
        new(this, batchSize, (rows, device) => stack(rows.ToArray()).to(device), shuffle, CPU, seed: 3, disposeDataset: false);

    protected override void Dispose(bool disposing)
    {
        if (disposing) _rows.Dispose();
        base.Dispose(disposing);
    }
}
