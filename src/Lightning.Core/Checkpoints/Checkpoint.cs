using System.Diagnostics;
using System.IO.Compression;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Win32.SafeHandles;
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
    public const int CurrentFormatVersion = 2;

    private const string Format = "lightning.net-checkpoint";
    private const string MetadataEntry = "checkpoint.json";
    private const string WeightsEntry = "state_dict.bin";
    private const string OptimizerEntryPrefix = "optimizer_states/";
    private const string RngStateEntry = "rng_state.bin";
    private const string CorruptMarker = "checkpoint";

    private ReadOnlyMemory<byte> _weights;
    private readonly List<ReadOnlyMemory<byte>> _optimizerStates = [];
    private readonly List<CaptureBuffer> _captureBuffers = [];

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
    internal ReadOnlyMemory<byte>? RngState { get; private set; }

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
        var weights = checkpoint.NewCaptureBuffer();
        module.save(weights);
        checkpoint._weights = weights.Written;
        foreach (var optimizer in weightsOnly ? [] : optimizers)
        {
            var state = checkpoint.NewCaptureBuffer();
            using (var writer = new BinaryWriter(state, System.Text.Encoding.UTF8, leaveOpen: true))
                Helper(optimizer).save_state_dict(writer);
            checkpoint._optimizerStates.Add(state.Written);
        }
        return checkpoint;
    }

    /// <summary>Keeps a copy of libtorch's generator state with the captured weights.</summary>
    internal void CaptureRngState(ReadOnlySpan<byte> state)
    {
        var buffer = NewCaptureBuffer();
        buffer.Write(state);
        RngState = buffer.Written;
    }

    private CaptureBuffer NewCaptureBuffer()
    {
        var buffer = new CaptureBuffer();
        _captureBuffers.Add(buffer);
        return buffer;
    }

    /// <summary>Writes a captured checkpoint once, then gives its buffers back: it holds no weights afterwards.</summary>
    internal void SaveAndRelease(string path)
    {
        try
        {
            Save(path);
        }
        finally
        {
            Release();
        }
    }

    /// <summary>Gives a captured checkpoint's buffers back without writing it (ranks other than 0 capture but never write).</summary>
    internal void Release()
    {
        _weights = ReadOnlyMemory<byte>.Empty;
        for (int i = 0; i < _optimizerStates.Count; i++) _optimizerStates[i] = ReadOnlyMemory<byte>.Empty;
        RngState = null;
        foreach (var buffer in _captureBuffers) buffer.Return();
        _captureBuffers.Clear();
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
                RngState = ReadRngState(archive, metadata, path),
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
        // The archive is built in a pooled buffer and written with one call, so a save adds little garbage to TorchSharp's own.
        var image = new CaptureBuffer();
        try
        {
            using (var archive = new ZipArchive(image, ZipArchiveMode.Create, leaveOpen: true))
            {
                using (var metadata = archive.CreateEntry(MetadataEntry, CompressionLevel.NoCompression).Open())
                    WriteMetadata(metadata);
                WriteEntry(archive, WeightsEntry, _weights);
                for (int i = 0; i < _optimizerStates.Count; i++)
                    WriteEntry(archive, $"{OptimizerEntryPrefix}{i}.bin", _optimizerStates[i]);
                if (RngState is { } rng) WriteEntry(archive, RngStateEntry, rng);
            }
            WriteThroughTemporaryFile(Path.GetFullPath(path), image.Written.Span);
        }
        finally
        {
            image.Return();
        }
    }

    /// <summary>
    /// Creates the folder only when it is missing and touches the temporary file again only on failure: a checkpoint per
    /// short epoch made those extra system calls a visible part of the epoch.
    /// </summary>
    private static void WriteThroughTemporaryFile(string path, ReadOnlySpan<byte> bytes)
    {
        var directory = Path.GetDirectoryName(path)!;
        var temp = Path.Combine(directory, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        SafeFileHandle file;
        try
        {
            file = File.OpenHandle(temp, FileMode.CreateNew, FileAccess.Write);
        }
        catch (DirectoryNotFoundException)
        {
            Directory.CreateDirectory(directory);
            file = File.OpenHandle(temp, FileMode.CreateNew, FileAccess.Write);
        }
        try
        {
            using (file) RandomAccess.Write(file, bytes, fileOffset: 0);
            File.Move(temp, path, overwrite: true);
        }
        catch
        {
            File.Delete(temp);
            throw;
        }
    }

    private void WriteMetadata(Stream stream)
    {
        using var json = new Utf8JsonWriter(stream);
        json.WriteStartObject();
        json.WriteString("format", Format);
        json.WriteNumber("format_version", CurrentFormatVersion);
        json.WriteString("lightning_net_version", typeof(Checkpoint).Assembly.GetName().Version?.ToString());
        json.WriteString("module_type", ModuleType);
        json.WriteNumber("epoch", Epoch);
        json.WriteNumber("global_step", GlobalStep);
        json.WritePropertyName("hyper_parameters");
        JsonSerializer.Serialize(json, Hyperparameters);
        json.WriteBoolean("weights_only", WeightsOnly);
        json.WriteNumber("optimizer_count", _optimizerStates.Count);
        json.WritePropertyName("scheduler_steps");
        JsonSerializer.Serialize(json, SchedulerSteps);
        WriteNode(json, "loops", Loops);
        WriteNode(json, "datamodule", DataModule);
        json.WritePropertyName("datamodule_hyper_parameters");
        JsonSerializer.Serialize(json, DataModuleHyperparameters);
        WriteNode(json, "callbacks", Callbacks);
        WriteNode(json, "extra", Extra);
        json.WriteEndObject();
    }

    private static void WriteNode(Utf8JsonWriter json, string name, JsonNode? node)
    {
        json.WritePropertyName(name);
        if (node is null) json.WriteNullValue();
        else node.WriteTo(json);
    }

    internal void RestoreWeights(LightningModule module)
    {
        using var weights = ReadOnlyStream(_weights);
        module.load(weights, strict: true);
    }

    internal void RestoreOptimizers(IReadOnlyList<torch.optim.Optimizer> optimizers)
    {
        if (optimizers.Count != _optimizerStates.Count)
            throw new InvalidOperationException(
                $"The checkpoint holds {_optimizerStates.Count} optimizer state(s) but the module configured {optimizers.Count} optimizer(s).");
        for (int i = 0; i < optimizers.Count; i++)
        {
            using var reader = new BinaryReader(ReadOnlyStream(_optimizerStates[i]));
            Helper(optimizers[i]).load_state_dict(reader);
        }
    }

    private static OptimizerHelper Helper(torch.optim.Optimizer optimizer) =>
        optimizer as OptimizerHelper ?? throw new NotSupportedException(
            $"Optimizer {optimizer.GetType().Name} cannot save its state; use one of TorchSharp's built-in optimizers.");

    private static ReadOnlyMemory<byte>? ReadRngState(ZipArchive archive, JsonObject metadata, string path)
    {
        if (archive.GetEntry(RngStateEntry) is not null) return ReadEntry(archive, RngStateEntry, path);
        // Format version 1 kept the state as base64 in the metadata.
        return (string?)metadata["rng_state"] is { } base64 ? Convert.FromBase64String(base64) : (ReadOnlyMemory<byte>?)null;
    }

    private static byte[] ReadEntry(ZipArchive archive, string name, string path)
    {
        var entry = archive.GetEntry(name) ?? throw Corrupt(path, $"entry '{name}' is missing");
        using var stream = entry.Open();
        using var buffer = new MemoryStream();
        stream.CopyTo(buffer);
        return buffer.ToArray();
    }

    private static void WriteEntry(ZipArchive archive, string name, ReadOnlyMemory<byte> bytes)
    {
        // Weights barely compress and checkpoints are written often: store them as they are.
        using var stream = archive.CreateEntry(name, CompressionLevel.NoCompression).Open();
        stream.Write(bytes.Span);
    }

    private static MemoryStream ReadOnlyStream(ReadOnlyMemory<byte> bytes)
    {
        // Loaded entries and capture buffers are both arrays.
        if (!MemoryMarshal.TryGetArray(bytes, out var segment)) throw new UnreachableException();
        return new MemoryStream(segment.Array!, segment.Offset, segment.Count, writable: false);
    }

    private static InvalidDataException Corrupt(string path, string reason, Exception? inner = null)
    {
        var error = new InvalidDataException(
            $"Checkpoint '{path}' is corrupted or is not a Lightning.NET checkpoint: {reason}.", inner);
        error.Data[CorruptMarker] = path;
        return error;
    }
}
