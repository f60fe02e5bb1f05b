using Lightning;
using Lightning.Data;
using static TorchSharp.torch;

namespace QuickStartCli;

/// <summary>Fashion-MNIST as flattened images and labels: training split for fit, test split for validation, test and prediction.</summary>
public sealed class FashionMnistData : LightningDataModule<IList<Tensor>>
{
    private readonly string? _root;
    private readonly int _batchSize;
    private FashionMnist? _train, _test;

    /// <summary>Fashion-MNIST from a folder.</summary>
    /// <param name="root">The folder of the IDX files (default: $LIGHTNING_DATA, then /usr/share/datasets/fashion-mnist).</param>
    /// <param name="batchSize">Images per batch.</param>
    public FashionMnistData(string? root = null, int batchSize = 64)
    {
        (_root, _batchSize) = (root, batchSize);
        SaveHyperparameters(new { root, batchSize });
    }

    /// <inheritdoc />
    public override void Setup(Stage stage)
    {
        if (stage == Stage.Fit) _train ??= new FashionMnist(_root, train: true);
        _test ??= new FashionMnist(_root, train: false);
    }

    /// <inheritdoc />
    public override IEnumerable<IList<Tensor>> TrainDataLoader() => Flattened(_train!, shuffle: true);

    /// <inheritdoc />
    public override IEnumerable<IList<Tensor>>? ValDataLoader() => Flattened(_test!, shuffle: false);

    /// <inheritdoc />
    public override IEnumerable<IList<Tensor>> TestDataLoader() => Flattened(_test!, shuffle: false);

    /// <inheritdoc />
    public override IEnumerable<IList<Tensor>> PredictDataLoader() => Flattened(_test!, shuffle: false);

    private IEnumerable<IList<Tensor>> Flattened(FashionMnist data, bool shuffle)
    {
        using var loader = utils.data.DataLoader(data, _batchSize, shuffle: shuffle, disposeDataset: false);
        foreach (var batch in loader) yield return [batch[0].flatten(1), batch[1]];
    }
}
