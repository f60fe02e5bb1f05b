using System.Diagnostics;
using System.IO.Compression;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Lightning.Interop;
using Lightning.IO;
using Lightning.Strategies;
using TorchSharp;
using TorchSharp.Modules;

namespace Lightning.Checkpoints;

/// <summary>
/// A training checkpoint (<c>.ckpt</c>): a zip archive holding <c>checkpoint.json</c> (format version, epoch, global step,
/// hyperparameters, loop and callback state), the module's weights and each optimizer's state in TorchSharp's format.
/// Files are written durably (temporary file, flushed, renamed, folder flushed), so a crash or power loss never leaves a
/// partial checkpoint, and tensors stream in and out of the archive, so any size that fits on disk can be saved and loaded.
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

    /// <summary>
    /// Module state up to this size is captured in memory, so the file can be written in the background while training
    /// goes on; larger state streams straight from the module into the file when it is saved (at once, before training
    /// continues), so a save never holds a second copy of a large model.
    /// </summary>
    internal const long MaxCapturedBytes = 32L * 1024 * 1024;

    // Captured in memory: the weights and optimizer states as bytes.
    private ReadOnlyMemory<byte> _weights;
    private readonly List<ReadOnlyMemory<byte>> _optimizerStates = [];
    private readonly List<CaptureBuffer> _captureBuffers = [];

    // Captured by reference (large state): written from the live module and optimizers when saved.
    private torch.nn.Module? _liveModule;
    private IReadOnlyList<torch.optim.Optimizer> _liveOptimizers = [];

    // Loaded: the file the weights and optimizer states are read from when restored, and how it looked when loaded.
    private string? _file;
    private (long Length, DateTime Written) _fileStamp;
    private int _optimizerCount;

    // Imported from a PyTorch Lightning checkpoint: the weights and optimizer state dicts as PyTorch wrote them.
    private List<(string Name, torch.Tensor Value)>? _pyWeights;
    private List<Dictionary<object, object?>>? _pyOptimizerStates;
    private readonly List<string> _skippedOnImport = [];

    private Checkpoint() { }

    /// <summary>
    /// For a PyTorch Lightning <c>.ckpt</c>: what was not carried over, and why (callback state, the random generator
    /// state, an optimizer of another kind, …). Empty for a Lightning.NET checkpoint. Each is also written to standard error
    /// when it is skipped.
    /// </summary>
    public IReadOnlyList<string> SkippedOnImport => _skippedOnImport;

    /// <summary>True when the file is a PyTorch Lightning checkpoint rather than a Lightning.NET one.</summary>
    public bool IsPyTorchLightning => _pyWeights is not null;

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
    public int OptimizerCount => _optimizerCount;

    /// <summary>The datamodule's state, if it saved any.</summary>
    public JsonObject? DataModule { get; internal set; }

    /// <summary>The datamodule's hyperparameters, if it saved any.</summary>
    public IReadOnlyDictionary<string, JsonElement> DataModuleHyperparameters { get; internal set; } = new Dictionary<string, JsonElement>();

    /// <summary>True when the checkpoint holds only weights (no optimizer, loop or callback state).</summary>
    public bool WeightsOnly { get; private set; }

    /// <summary>Loop progress: epoch, batches done in it, total batches, global step.</summary>
    internal JsonObject Loops { get; set; } = new();

    /// <summary>The states of the module's persistent metrics, by field name (null: none).</summary>
    internal JsonObject? MetricStates { get; private set; }

    /// <summary>libtorch's random generator state when the checkpoint was taken.</summary>
    internal ReadOnlyMemory<byte>? RngState { get; private set; }

    /// <summary>Steps taken by each scheduler (replayed on resume).</summary>
    internal int[] SchedulerSteps { get; set; } = [];

    /// <summary>Optimizers whose state the strategy writes in shards beside the file (see <see cref="OptimizerShards"/>).</summary>
    internal IReadOnlyList<torch.optim.Optimizer> ShardedOptimizers { get; private set; } = [];

    /// <summary>Where a sharded strategy wrote the optimizer state (folder, world size, files), or null when it is inside the file.</summary>
    internal JsonObject? OptimizerShards { get; set; }

    /// <summary>Captures the module and, unless <paramref name="weightsOnly"/>, the optimizers; with <paramref name="shardedOptimizers"/> the strategy writes their state in shards and the file holds none.</summary>
    internal static Checkpoint Capture(LightningModule module, IReadOnlyList<torch.optim.Optimizer> optimizers, int epoch,
        long globalStep, bool weightsOnly, bool shardedOptimizers = false)
    {
        var checkpoint = new Checkpoint
        {
            WeightsOnly = weightsOnly,
            Epoch = epoch,
            GlobalStep = globalStep,
            ModuleType = module.GetType().FullName ?? module.GetType().Name,
            Hyperparameters = Lightning.Hyperparameters.ToJson(module.Hparams),
            MetricStates = Lightning.Metrics.ModuleMetrics.Save(module),
        };
        IReadOnlyList<torch.optim.Optimizer> kept = weightsOnly || shardedOptimizers ? [] : optimizers;
        if (shardedOptimizers && !weightsOnly) checkpoint.ShardedOptimizers = optimizers;
        checkpoint._optimizerCount = kept.Count;
        if (StateDictStream.SizeOf(module) > MaxCapturedBytes)
        {
            (checkpoint._liveModule, checkpoint._liveOptimizers) = (module, kept);
            return checkpoint;
        }
        var weights = checkpoint.NewCaptureBuffer();
        StateDictStream.Write(weights, module);
        checkpoint._weights = weights.Written;
        foreach (var optimizer in kept)
        {
            var state = checkpoint.NewCaptureBuffer();
            using (var writer = new BinaryWriter(state, System.Text.Encoding.UTF8, leaveOpen: true))
            using (MemoryLayout.ContiguousState(Helper(optimizer)))
                Helper(optimizer).save_state_dict(writer);
            checkpoint._optimizerStates.Add(state.Written);
        }
        return checkpoint;
    }

    /// <summary>
    /// True when the checkpoint refers to the live module instead of holding a copy: it must be saved before training
    /// changes the weights again.
    /// </summary>
    internal bool IsLive => _liveModule is not null;

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
        (_liveModule, _liveOptimizers, ShardedOptimizers) = (null, [], []);
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
            using var archive = OpenArchive(path);
            // Told by content, not by name: both formats end in .ckpt.
            if (archive.GetEntry(MetadataEntry) is null && TorchFile.IsTorchArchive(archive))
            {
                try
                {
                    return LightningCheckpointReader.Read(archive, Path.GetFullPath(path));
                }
                catch (InvalidDataException e)
                {
                    e.Data[CorruptMarker] = path;   // the message already names the file and what is wrong
                    throw;
                }
            }
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
                MetricStates = metadata["metrics"]?.AsObject() is { } metrics ? (JsonObject)metrics.DeepClone() : null,
                RngState = ReadRngState(archive, metadata, path),
                SchedulerSteps = metadata["scheduler_steps"]?.Deserialize<int[]>() ?? [],
                _optimizerCount = (int?)metadata["optimizer_count"] ?? 0,
                OptimizerShards = metadata["optimizer_shards"]?.AsObject() is { } shards ? (JsonObject)shards.DeepClone() : null,
                _file = Path.GetFullPath(path),
                _fileStamp = StampOf(path),
            };
            // Weights and optimizer states stay in the file until they are restored, streamed into the tensors.
            foreach (var name in checkpoint.TensorEntries())
                if (archive.GetEntry(name) is null) throw Corrupt(path, $"entry '{name}' is missing");
            if (checkpoint.OptimizerShards is { } manifest && OptimizerShardFiles.Missing(path, manifest) is { } missing)
                throw Corrupt(path, $"its optimizer shard '{missing}' is missing or incomplete");
            return checkpoint;
        }
        catch (Exception e) when (e is InvalidDataException or JsonException or InvalidOperationException or FormatException
                                      or EndOfStreamException && !e.Data.Contains(CorruptMarker))
        {
            throw Corrupt(path, e.Message, e);
        }
    }

    private static ZipArchive OpenArchive(string path)
    {
        Span<byte> magic = stackalloc byte[4];
        using (var file = File.OpenRead(path))
            if (file.ReadAtLeast(magic, 4, throwOnEndOfStream: false) < 4 || !magic.SequenceEqual("PK\x03\x04"u8))
                throw Corrupt(path, magic[0] == 0x80
                    ? "it is a PyTorch file in the legacy (pre-1.6, non-zip) format; load it in Python and save it again with torch.save's default format"
                    : "it is not a zip file; a checkpoint is a Lightning.NET checkpoint (a zip with checkpoint.json) or a PyTorch Lightning one (a torch.save zip with data.pkl)");
        return ZipFile.OpenRead(path);
    }

    /// <summary>A checkpoint read from a PyTorch Lightning <c>.ckpt</c> (see <see cref="LightningCheckpointReader"/>).</summary>
    internal static Checkpoint FromPyTorch(string path, int epoch, long globalStep, Dictionary<string, JsonElement> hyperparameters,
        List<(string, torch.Tensor)> weights, List<Dictionary<object, object?>>? optimizerStates, JsonObject loops, int[] schedulerSteps,
        bool weightsOnly, List<string> skipped)
    {
        var checkpoint = new Checkpoint
        {
            Epoch = epoch,
            GlobalStep = globalStep,
            Hyperparameters = hyperparameters,
            WeightsOnly = weightsOnly,
            Loops = loops,
            SchedulerSteps = schedulerSteps,
            _file = path,
            _pyWeights = weights,
            _pyOptimizerStates = optimizerStates,
            _optimizerCount = optimizerStates?.Count ?? 0,
        };
        foreach (var reason in skipped) checkpoint.Skip(reason);
        return checkpoint;
    }

    private void Skip(string reason)
    {
        _skippedOnImport.Add(reason);
        Console.Error.WriteLine($"Lightning checkpoint '{_file}': not restored: {reason}.");
    }

    private IEnumerable<string> TensorEntries() =>
        Enumerable.Range(0, _optimizerCount).Select(i => $"{OptimizerEntryPrefix}{i}.bin").Prepend(WeightsEntry);

    private static (long, DateTime) StampOf(string path)
    {
        var info = new FileInfo(path);
        return (info.Length, info.LastWriteTimeUtc);
    }

    /// <summary>Writes the checkpoint to <paramref name="path"/> durably (temporary file, flushed, renamed, folder flushed).</summary>
    internal void Save(string path) => DurableFile.Write(path, WriteArchive);

    private void WriteArchive(Stream file)
    {
        using var archive = new ZipArchive(file, ZipArchiveMode.Create, leaveOpen: true);
        using (var metadata = archive.CreateEntry(MetadataEntry, CompressionLevel.NoCompression).Open())
            WriteMetadata(metadata);
        if (_liveModule is { } module)
        {
            WriteEntry(archive, WeightsEntry, stream => StateDictStream.Write(stream, module));
            for (int i = 0; i < _liveOptimizers.Count; i++)
            {
                var optimizer = Helper(_liveOptimizers[i]);
                WriteEntry(archive, $"{OptimizerEntryPrefix}{i}.bin", stream =>
                {
                    using var writer = new BinaryWriter(stream, System.Text.Encoding.UTF8, leaveOpen: true);
                    using var contiguous = MemoryLayout.ContiguousState(optimizer);
                    optimizer.save_state_dict(writer);
                });
            }
        }
        else
        {
            if (_file is not null) throw new InvalidOperationException("A loaded checkpoint cannot be saved again; save from the trainer.");
            WriteEntry(archive, WeightsEntry, _weights);
            for (int i = 0; i < _optimizerStates.Count; i++)
                WriteEntry(archive, $"{OptimizerEntryPrefix}{i}.bin", _optimizerStates[i]);
        }
        if (RngState is { } rng) WriteEntry(archive, RngStateEntry, rng);
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
        json.WriteNumber("optimizer_count", _optimizerCount);
        if (OptimizerShards is not null) WriteNode(json, "optimizer_shards", OptimizerShards);
        json.WritePropertyName("scheduler_steps");
        JsonSerializer.Serialize(json, SchedulerSteps);
        WriteNode(json, "loops", Loops);
        WriteNode(json, "datamodule", DataModule);
        json.WritePropertyName("datamodule_hyper_parameters");
        JsonSerializer.Serialize(json, DataModuleHyperparameters);
        WriteNode(json, "callbacks", Callbacks);
        WriteNode(json, "extra", Extra);
        if (MetricStates is not null) WriteNode(json, "metrics", MetricStates);
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
        if (_pyWeights is { } pyWeights)
        {
            StateDictLoader.Load(module, pyWeights, strict: true, keyMap: null, $"Lightning checkpoint '{_file}'");
            return;
        }
        using var weights = OpenTensorEntry(WeightsEntry, _weights);
        try
        {
            StateDictStream.Read(weights, module, strict: true, _file is null ? "The checkpoint's weights" : $"Checkpoint '{_file}'");
            Lightning.Metrics.ModuleMetrics.Load(module, MetricStates, _file is null ? "The checkpoint" : $"Checkpoint '{_file}'");
        }
        catch (InvalidDataException e) when (_file is not null && e.Message.Contains("is not a valid", StringComparison.Ordinal))
        {
            throw Corrupt(_file, e.Message, e);
        }
    }

    internal void RestoreOptimizers(IReadOnlyList<torch.optim.Optimizer> optimizers)
    {
        if (optimizers.Count != _optimizerCount)
            throw new InvalidOperationException(
                $"The checkpoint holds {_optimizerCount} optimizer state(s) but the module configured {optimizers.Count} optimizer(s).");
        if (_pyOptimizerStates is { } pyStates)
        {
            for (int i = 0; i < optimizers.Count; i++)
                if (PyTorchOptimizerState.Load(optimizers[i], pyStates[i]) is { } why)
                    Skip($"optimizer {i} ({optimizers[i].GetType().Name}) starts fresh: {why}");
            return;
        }
        for (int i = 0; i < optimizers.Count; i++)
        {
            using var state = OpenTensorEntry($"{OptimizerEntryPrefix}{i}.bin", i < _optimizerStates.Count ? _optimizerStates[i] : default);
            using var reader = new BinaryReader(state);
            try
            {
                // TorchSharp reads raw bytes into the state tensors, which channels-last weights made non-contiguous.
                MemoryLayout.MakeStateContiguous(Helper(optimizers[i]));
                Helper(optimizers[i]).load_state_dict(reader);
            }
            catch (EndOfStreamException e) when (_file is not null)
            {
                throw Corrupt(_file, $"optimizer state {i} ends early", e);
            }
        }
    }

    /// <summary>Reads the optimizer shards this checkpoint names into <paramref name="optimizers"/>, whatever world size wrote them.</summary>
    internal void RestoreOptimizerShards(IReadOnlyList<torch.optim.Optimizer> optimizers)
    {
        var file = _file ?? throw new InvalidOperationException("Optimizer shards are restored from a checkpoint file; load it with Checkpoint.Load.");
        OptimizerShardFiles.Restore(file, OptimizerShards!, optimizers);
    }

    /// <summary>
    /// A captured entry from memory, or a loaded one streamed from its file (buffered: TorchSharp reads headers byte by
    /// byte). The file must be the one that was loaded: restoring weights of one file with the metadata of another would
    /// resume a different run silently.
    /// </summary>
    private Stream OpenTensorEntry(string name, ReadOnlyMemory<byte> captured)
    {
        if (_file is null)
        {
            if (_liveModule is not null) throw new InvalidOperationException("This checkpoint was captured by reference; save it before restoring from it.");
            return ReadOnlyStream(captured);
        }
        if (!File.Exists(_file)) throw new FileNotFoundException($"Checkpoint '{_file}' was removed after it was loaded.", _file);
        if (StampOf(_file) != _fileStamp)
            throw new InvalidOperationException($"Checkpoint '{_file}' was replaced after it was loaded; load it again.");
        var archive = ZipFile.OpenRead(_file);
        try
        {
            var entry = archive.GetEntry(name) ?? throw Corrupt(_file, $"entry '{name}' is missing");
            VerifyCrc(entry, _file);
            return new OwningStream(new BufferedStream(entry.Open(), 1 << 16), archive);
        }
        catch
        {
            archive.Dispose();
            throw;
        }
    }

    // The weights are stored uncompressed and streamed straight into the module, so a byte flipped inside an intact
    // zip would load as a wrong weight: the entry's CRC-32 is checked before any of it is used.
    private static void VerifyCrc(ZipArchiveEntry entry, string path)
    {
        var crc = new System.IO.Hashing.Crc32();
        using (var stream = entry.Open()) crc.Append(stream);
        if (crc.GetCurrentHashAsUInt32() != entry.Crc32)
            throw Corrupt(path, $"entry '{entry.FullName}' fails its CRC-32 check (its bytes changed after it was written)");
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
        using var entry = archive.CreateEntry(name, CompressionLevel.NoCompression).Open();
        entry.Write(bytes.Span);
    }

    private static void WriteEntry(ZipArchive archive, string name, Action<Stream> write)
    {
        // Weights barely compress and checkpoints are written often: store them as they are. Buffered, because
        // TorchSharp writes tensor headers a byte at a time.
        using var entry = archive.CreateEntry(name, CompressionLevel.NoCompression).Open();
        using var buffered = new BufferedStream(entry, 1 << 16);
        write(buffered);
        buffered.Flush();
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

    /// <summary>An entry's stream that closes its archive (and so the file) with it.</summary>
    private sealed class OwningStream(Stream inner, IDisposable owner) : Stream
    {
        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => false;
        public override long Length => inner.Length;
        public override long Position { get => inner.Position; set => throw new NotSupportedException(); }
        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);
        public override int Read(Span<byte> buffer) => inner.Read(buffer);
        public override int ReadByte() => inner.ReadByte();
        public override void Flush() { }
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
                owner.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}
