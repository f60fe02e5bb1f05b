namespace Lightning.Loops;

/// <summary>The data loaders of a run: given directly, or asked of a datamodule when needed (and again on reload).</summary>
internal sealed class DataSource<TBatch>
{
    private readonly IEnumerable<TBatch>? _train, _val, _test, _predict;

    public DataSource(IEnumerable<TBatch>? train, IEnumerable<TBatch>? val = null, IEnumerable<TBatch>? test = null,
        IEnumerable<TBatch>? predict = null) => (_train, _val, _test, _predict) = (train, val, test, predict);

    public DataSource(LightningDataModule<TBatch> datamodule) => DataModule = datamodule;

    public LightningDataModule<TBatch>? DataModule { get; }

    public IEnumerable<TBatch> Train() => _train ?? DataModule?.TrainDataLoader()
        ?? throw new InvalidOperationException("Fit needs a training data loader.");

    public IEnumerable<TBatch>? Val() => _val ?? DataModule?.ValDataLoader();
    public IEnumerable<TBatch>? Test() => _test ?? DataModule?.TestDataLoader();

    public IEnumerable<TBatch> Predict() => _predict ?? DataModule?.PredictDataLoader()
        ?? throw new InvalidOperationException("Predict needs a data loader.");
}
