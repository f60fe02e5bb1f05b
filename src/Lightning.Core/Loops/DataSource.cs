namespace Lightning.Loops;

/// <summary>The data loaders of a run: given directly, or asked of a datamodule when needed (and again on reload).</summary>
internal sealed class DataSource<TBatch>
{
    private readonly IEnumerable<TBatch>? _train, _val, _test, _predict;

    public DataSource(IEnumerable<TBatch>? train, IEnumerable<TBatch>? val = null, IEnumerable<TBatch>? test = null,
        IEnumerable<TBatch>? predict = null) => (_train, _val, _test, _predict) = (train, val, test, predict);

    public DataSource(LightningDataModule<TBatch> datamodule) => DataModule = datamodule;

    public LightningDataModule<TBatch>? DataModule { get; }

    /// <summary>True when a validation loader was passed, or the datamodule overrides <c>ValDataLoader</c> (Lightning's <c>is_defined</c>, without calling it).</summary>
    public bool ValDefined => _val is not null
        || DataModule?.GetType().GetMethod(nameof(LightningDataModule<TBatch>.ValDataLoader), Type.EmptyTypes)?.DeclaringType is { } declaring
            && declaring != typeof(LightningDataModule<TBatch>);

    /// <summary>Turns a loader into this process's share (the flag says training): the strategy's <c>ShardLoader</c> with <c>UseDistributedSampler</c>; null keeps loaders whole.</summary>
    public Func<IEnumerable<TBatch>, bool, IEnumerable<TBatch>>? Shard { get; set; }

    public IEnumerable<TBatch> Train() => Apply(_train ?? DataModule?.TrainDataLoader()
        ?? throw new InvalidOperationException("Fit needs a training data loader."), training: true);

    public IEnumerable<TBatch>? Val() => Apply(_val ?? DataModule?.ValDataLoader(), training: false);
    public IEnumerable<TBatch>? Test() => Apply(_test ?? DataModule?.TestDataLoader(), training: false);

    public IEnumerable<TBatch> Predict() => Apply(_predict ?? DataModule?.PredictDataLoader()
        ?? throw new InvalidOperationException("Predict needs a data loader."), training: false);

    [return: System.Diagnostics.CodeAnalysis.NotNullIfNotNull(nameof(loader))]
    private IEnumerable<TBatch>? Apply(IEnumerable<TBatch>? loader, bool training) =>
        loader is null || Shard is null ? loader : Shard(loader, training);
}
