using System.Text.Json.Nodes;

namespace Lightning;

/// <summary>
/// Everything about the data in one place, as Lightning's <c>LightningDataModule</c>: download once
/// (<see cref="PrepareData"/>), build datasets per stage (<see cref="Setup"/>), hand out the data loaders
/// (<see cref="LightningDataModule{TBatch}"/>), clean up. This base is what trainers and checkpoints see.
/// </summary>
public abstract class LightningDataModule
{
    private Dictionary<string, object?> _hparams = new();

    /// <summary>The trainer using this datamodule, while one is.</summary>
    public Trainer? Trainer { get; internal set; }

    /// <summary>Hyperparameters recorded with <see cref="SaveHyperparameters"/>; saved in checkpoints.</summary>
    public IReadOnlyDictionary<string, object?> Hparams => _hparams;

    /// <summary>Records hyperparameters from an anonymous object or a dictionary.</summary>
    protected void SaveHyperparameters(object values)
    {
        ArgumentNullException.ThrowIfNull(values);
        foreach (var (name, value) in Arguments.ToDictionary(values, nameof(values)))
        {
            Hyperparameters.EnsureSerializable(name, value);
            _hparams[name] = value;
        }
    }

    /// <summary>Downloads or prepares data once per machine; must not set state (it may run in another process).</summary>
    public virtual void PrepareData() { }

    /// <summary>Builds the datasets a stage needs.</summary>
    public virtual void Setup(Stage stage) { }

    /// <summary>Releases what <see cref="Setup"/> built.</summary>
    public virtual void Teardown(Stage stage) { }

    /// <summary>State to keep in checkpoints; null when there is none.</summary>
    public virtual JsonObject? SaveState() => null;

    /// <summary>Restores what <see cref="SaveState"/> returned.</summary>
    public virtual void LoadState(JsonObject state) { }

    internal void RestoreHyperparameters(IReadOnlyDictionary<string, System.Text.Json.JsonElement> saved) =>
        _hparams = Hyperparameters.Materialize(saved, new Dictionary<string, object?>());
}

/// <summary>A <see cref="LightningDataModule"/> whose loaders yield batches of type <typeparamref name="TBatch"/>.</summary>
/// <typeparam name="TBatch">The batch type its loaders yield.</typeparam>
public abstract class LightningDataModule<TBatch> : LightningDataModule
{
    /// <summary>The training loader.</summary>
    public virtual IEnumerable<TBatch> TrainDataLoader() => throw Missing(nameof(TrainDataLoader), Stage.Fit);

    /// <summary>The validation loader; null when there is no validation data.</summary>
    public virtual IEnumerable<TBatch>? ValDataLoader() => null;

    /// <summary>The test loader.</summary>
    public virtual IEnumerable<TBatch> TestDataLoader() => throw Missing(nameof(TestDataLoader), Stage.Test);

    /// <summary>The prediction loader.</summary>
    public virtual IEnumerable<TBatch> PredictDataLoader() => throw Missing(nameof(PredictDataLoader), Stage.Predict);

    private NotImplementedException Missing(string method, Stage stage) =>
        new($"{GetType().Name} does not override {method}, which {stage} needs.");
}
