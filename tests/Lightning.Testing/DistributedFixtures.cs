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
    public string WeightsText() => string.Join("\n", state_dict().Select(p =>
        $"{p.Key} {string.Join(" ", p.Value.to(ScalarType.Float64).flatten().data<double>().ToArray().Select(v => v.ToString("R", CultureInfo.InvariantCulture)))}"));

    /// <summary>Loads weights written by <see cref="WeightsText"/>.</summary>
    public void LoadWeightsText(string text)
    {
        using var noGrad = no_grad();
        var state = state_dict();
        foreach (var (name, values) in ParseWeights(text))
            state[name].copy_(tensor(values).reshape(state[name].shape).to(state[name].dtype));
    }

    public static Dictionary<string, double[]> ParseWeights(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries)
        .Select(line => line.Split(' '))
        .ToDictionary(parts => parts[0], parts => parts.Skip(1).Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray());
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
