using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using TorchSharp.Modules;

namespace Lightning.Checkpoints;

/// <summary>
/// A training checkpoint (<c>.ckpt</c>): a zip archive holding <c>checkpoint.json</c> (format version, epoch, global step,
/// hyperparameters, loop and callback state), the module's weights and each optimizer's state in TorchSharp's format.
/// Files are written to a temporary name and renamed, so a crash never leaves a partial checkpoint.
/// </summary>
public sealed class Checkpoint
{
    /// <summary>The format version this library writes; it reads this version and older ones.</summary>
    public const int CurrentFormatVersion = 1;

    private const string Format = "lightning.net-checkpoint";
    private const string MetadataEntry = "checkpoint.json";
    private const string WeightsEntry = "state_dict.bin";
    private const string OptimizerEntryPrefix = "optimizer_states/";
    private const string CorruptMarker = "checkpoint";

    private byte[] _weights = [];
    private List<byte[]> _optimizerStates = [];

    private Checkpoint() { }

    /// <summary>The format version of the file this checkpoint came from.</summary>
    public int FormatVersion { get; private set; } = CurrentFormatVersion;

    /// <summary>The epoch in progress when the checkpoint was taken.</summary>
    public int Epoch { get; private set; }

    /// <summary>Optimizer steps taken when the checkpoint was taken.</summary>
    public long GlobalStep { get; private set; }

    /// <summary>The full name of the module's type.</summary>
    public string ModuleType { get; private set; } = "";

    /// <summary>The module's hyperparameters, as saved.</summary>
    public IReadOnlyDictionary<string, JsonElement> Hyperparameters { get; private set; } = new Dictionary<string, JsonElement>();

    /// <summary>State of callbacks, by their state key.</summary>
    public JsonObject Callbacks { get; private set; } = new();

    /// <summary>Anything a module adds in <see cref="LightningModule.OnSaveCheckpoint"/>.</summary>
    public JsonObject Extra { get; private set; } = new();

    /// <summary>The number of optimizer states stored.</summary>
    public int OptimizerCount => _optimizerStates.Count;

    /// <summary>The datamodule's state, if it saved any.</summary>
    public JsonObject? DataModule { get; internal set; }

    /// <summary>The datamodule's hyperparameters, if it saved any.</summary>
    public IReadOnlyDictionary<string, JsonElement> DataModuleHyperparameters { get; internal set; } = new Dictionary<string, JsonElement>();

    /// <summary>True when the checkpoint holds only weights (no optimizer, loop or callback state).</summary>
    public bool WeightsOnly { get; private set; }

    /// <summary>Loop progress: epoch, batches done in it, total batches, global step.</summary>
    internal JsonObject Loops { get; set; } = new();

    /// <summary>libtorch's random generator state when the checkpoint was taken.</summary>
    internal byte[]? RngState { get; set; }

    /// <summary>Steps taken by each scheduler (replayed on resume).</summary>
    internal int[] SchedulerSteps { get; set; } = [];

    internal static Checkpoint Capture(LightningModule module, IReadOnlyList<torch.optim.Optimizer> optimizers, int epoch,
        long globalStep, bool weightsOnly)
    {
        var checkpoint = new Checkpoint
        {
            WeightsOnly = weightsOnly,
            Epoch = epoch,
            GlobalStep = globalStep,
            ModuleType = module.GetType().FullName ?? module.GetType().Name,
            Hyperparameters = Lightning.Hyperparameters.ToJson(module.Hparams),
        };
        using (var weights = new MemoryStream())
        {
            module.save(weights);
            checkpoint._weights = weights.ToArray();
        }
        foreach (var optimizer in weightsOnly ? [] : optimizers)
        {
            using var state = new MemoryStream();
            using (var writer = new BinaryWriter(state, System.Text.Encoding.UTF8, leaveOpen: true))
                Helper(optimizer).save_state_dict(writer);
            checkpoint._optimizerStates.Add(state.ToArray());
        }
        return checkpoint;
    }

    /// <summary>Reads a checkpoint, refusing files that are corrupted or from a newer format version.</summary>
    public static Checkpoint Load(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"Checkpoint '{path}' does not exist.", path);
        try
        {
            using var archive = ZipFile.OpenRead(path);
            var metadata = JsonNode.Parse(ReadEntry(archive, MetadataEntry, path))?.AsObject()
                           ?? throw Corrupt(path, $"{MetadataEntry} is empty");
            if ((string?)metadata["format"] != Format) throw Corrupt(path, $"{MetadataEntry} does not name the format '{Format}'");
            var version = (int?)metadata["format_version"] ?? throw Corrupt(path, "format_version is missing");
            if (version > CurrentFormatVersion)
                throw new NotSupportedException(
                    $"Checkpoint '{path}' has format version {version}; this Lightning.NET reads versions up to " +
                    $"{CurrentFormatVersion}. Upgrade Lightning.NET to load it.");

            var checkpoint = new Checkpoint
            {
                FormatVersion = version,
                Epoch = (int?)metadata["epoch"] ?? throw Corrupt(path, "epoch is missing"),
                GlobalStep = (long?)metadata["global_step"] ?? throw Corrupt(path, "global_step is missing"),
                ModuleType = (string?)metadata["module_type"] ?? "",
                Hyperparameters = metadata["hyper_parameters"].Deserialize<Dictionary<string, JsonElement>>() ?? new(),
                Callbacks = metadata["callbacks"]?.AsObject() is { } callbacks ? (JsonObject)callbacks.DeepClone() : new(),
                Extra = metadata["extra"]?.AsObject() is { } extra ? (JsonObject)extra.DeepClone() : new(),
                DataModule = metadata["datamodule"]?.AsObject() is { } dm ? (JsonObject)dm.DeepClone() : null,
                DataModuleHyperparameters = metadata["datamodule_hyper_parameters"].Deserialize<Dictionary<string, JsonElement>>() ?? new(),
                WeightsOnly = (bool?)metadata["weights_only"] ?? false,
                Loops = metadata["loops"]?.AsObject() is { } loops ? (JsonObject)loops.DeepClone() : new(),
                RngState = (string?)metadata["rng_state"] is { } rng ? Convert.FromBase64String(rng) : null,
                SchedulerSteps = metadata["scheduler_steps"]?.Deserialize<int[]>() ?? [],
                _weights = ReadEntry(archive, WeightsEntry, path),
            };
            var optimizers = (int?)metadata["optimizer_count"] ?? 0;
            for (int i = 0; i < optimizers; i++)
                checkpoint._optimizerStates.Add(ReadEntry(archive, $"{OptimizerEntryPrefix}{i}.bin", path));
            return checkpoint;
        }
        catch (Exception e) when (e is InvalidDataException or JsonException or InvalidOperationException or FormatException
                                      or EndOfStreamException && !e.Data.Contains(CorruptMarker))
        {
            throw Corrupt(path, e.Message, e);
        }
    }

    /// <summary>Writes the checkpoint to <paramref name="path"/> through a temporary file in the same folder.</summary>
    internal void Save(string path)
    {
        var directory = Path.GetDirectoryName(Path.GetFullPath(path))!;
        Directory.CreateDirectory(directory);
        var metadata = new JsonObject
        {
            ["format"] = Format,
            ["format_version"] = CurrentFormatVersion,
            ["lightning_net_version"] = typeof(Checkpoint).Assembly.GetName().Version?.ToString(),
            ["module_type"] = ModuleType,
            ["epoch"] = Epoch,
            ["global_step"] = GlobalStep,
            ["hyper_parameters"] = JsonSerializer.SerializeToNode(Hyperparameters),
            ["weights_only"] = WeightsOnly,
            ["optimizer_count"] = _optimizerStates.Count,
            ["scheduler_steps"] = JsonSerializer.SerializeToNode(SchedulerSteps),
            ["loops"] = Loops.DeepClone(),
            ["rng_state"] = RngState is null ? null : Convert.ToBase64String(RngState),
            ["datamodule"] = DataModule?.DeepClone(),
            ["datamodule_hyper_parameters"] = JsonSerializer.SerializeToNode(DataModuleHyperparameters),
            ["callbacks"] = Callbacks.DeepClone(),
            ["extra"] = Extra.DeepClone(),
        };

        var temp = Path.Combine(directory, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        try
        {
            using (var archive = ZipFile.Open(temp, ZipArchiveMode.Create))
            {
                WriteEntry(archive, MetadataEntry, JsonSerializer.SerializeToUtf8Bytes(metadata));
                WriteEntry(archive, WeightsEntry, _weights);
                for (int i = 0; i < _optimizerStates.Count; i++)
                    WriteEntry(archive, $"{OptimizerEntryPrefix}{i}.bin", _optimizerStates[i]);
            }
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            File.Delete(temp);
        }
    }

    internal void RestoreWeights(LightningModule module)
    {
        using var weights = new MemoryStream(_weights, writable: false);
        module.load(weights, strict: true);
    }

    internal void RestoreOptimizers(IReadOnlyList<torch.optim.Optimizer> optimizers)
    {
        if (optimizers.Count != _optimizerStates.Count)
            throw new InvalidOperationException(
                $"The checkpoint holds {_optimizerStates.Count} optimizer state(s) but the module configured {optimizers.Count} optimizer(s).");
        for (int i = 0; i < optimizers.Count; i++)
        {
            using var reader = new BinaryReader(new MemoryStream(_optimizerStates[i], writable: false));
            Helper(optimizers[i]).load_state_dict(reader);
        }
    }

    private static OptimizerHelper Helper(torch.optim.Optimizer optimizer) =>
        optimizer as OptimizerHelper ?? throw new NotSupportedException(
            $"Optimizer {optimizer.GetType().Name} cannot save its state; use one of TorchSharp's built-in optimizers.");

    private static byte[] ReadEntry(ZipArchive archive, string name, string path)
    {
        var entry = archive.GetEntry(name) ?? throw Corrupt(path, $"entry '{name}' is missing");
        using var stream = entry.Open();
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        return buffer.ToArray();
    }

    private static void WriteEntry(ZipArchive archive, string name, byte[] bytes)
    {
        // Weights barely compress and checkpoints are written often: store them as they are.
        using var stream = archive.CreateEntry(name, CompressionLevel.NoCompression).Open();
        stream.Write(bytes);
    }

    private static InvalidDataException Corrupt(string path, string reason, Exception? inner = null)
    {
        var error = new InvalidDataException(
            $"Checkpoint '{path}' is corrupted or is not a Lightning.NET checkpoint: {reason}.", inner);
        error.Data[CorruptMarker] = path;
        return error;
    }
}
