using Lightning.Checkpoints;
using Lightning.IO;
using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Nodes;
using Lightning.Accelerators;
using Lightning.Loggers;
using Lightning.Precision;
using Lightning.Strategies;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lightning;

/// <summary>
/// Lightning's Fabric for people who keep their own training loop: it puts the module, optimizers and batches on the
/// right device and dtype, applies the precision (autocast, loss scaling) in <see cref="Backward"/> and
/// <see cref="Step"/>, and saves and loads state. It runs on the same strategies and precision plugins as the Trainer.
/// </summary>
/// <example><code>
/// var fabric = new Fabric(new FabricOptions { Precision = "bf16-mixed" });
/// fabric.Setup(model);
/// var optimizer = fabric.SetupOptimizer(optim.Adam(model.parameters()));
/// foreach (var (x, y) in fabric.SetupDataLoader(loader)) { ... fabric.Backward(loss); fabric.Step(optimizer); }
/// </code></example>
public sealed class Fabric
{
    private readonly List<nn.Module> _modules = [];

    /// <summary>Resolves the options; invalid ones fail here.</summary>
    public Fabric(FabricOptions? options = null)
    {
        Options = options ?? new FabricOptions();
        Options.Validate();
        Strategy = AcceleratorConnector.Connect(Options.Accelerator, Options.Devices, Options.Strategy, Options.Precision, numNodes: 1,
            Options.DistributedTimeout, Console.Error.WriteLine, Options.MemoryFormat, Options.MemoryFormatWeights);
        // Several devices in one process need a strategy that splits training steps, which a hand-written loop has not.
        if (Strategy.WorldSize == 1 && Strategy.ParallelDevices.Count > 1)
            throw new ArgumentException($"Devices = {Options.Devices}: Fabric drives one replica per process; for data parallel over several devices use the Trainer with Strategy = \"dp\".", nameof(options));
        LibTorch.ApplyDefaults();
    }

    /// <summary>The options this Fabric was built with.</summary>
    public FabricOptions Options { get; }

    /// <summary>How the loop is spread over devices and processes; it owns the accelerator and the precision plugin.</summary>
    public Strategy Strategy { get; }

    /// <summary>The device modules and batches are put on.</summary>
    public Device Device => Strategy.RootDevice;

    /// <summary>The precision in force (canonical name).</summary>
    public string Precision => Strategy.Precision.Name;

    /// <summary>This process's rank among all processes (0 without distributed training).</summary>
    public int GlobalRank => Strategy.GlobalRank;

    /// <summary>The number of processes (1 without distributed training).</summary>
    public int WorldSize => Strategy.WorldSize;

    /// <summary>True for the process that writes files.</summary>
    public bool IsGlobalZero => Strategy.IsGlobalZero;

    /// <summary>Moves <paramref name="module"/> to the device and casts it for the precision; call before creating its optimizers.</summary>
    public T Setup<T>(T module) where T : nn.Module
    {
        ArgumentNullException.ThrowIfNull(module);
        // Under "ddp" every process starts from rank 0's weights, and Backward averages this module's gradients.
        Strategy.SetupModule(module);
        _modules.Add(module);
        return module;
    }

    /// <summary>Returns <paramref name="optimizer"/> ready for <see cref="Step"/>; its parameters must already be set up.</summary>
    public optim.Optimizer SetupOptimizer(optim.Optimizer optimizer)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        var misplaced = optimizer.parameters().FirstOrDefault(p => p.device_type != Device.type || (Device.type != DeviceType.CPU && p.device_index != Device.index));
        if (misplaced is not null)
            throw new ArgumentException($"The optimizer holds a parameter on {misplaced.device}, not on {Device}: call Setup(module) before creating the optimizer.", nameof(optimizer));
        return optimizer;
    }

    /// <summary>Wraps a data loader so each batch arrives on the device, floating tensors in the precision's input dtype.</summary>
    public IEnumerable<TBatch> SetupDataLoader<TBatch>(IEnumerable<TBatch> loader)
    {
        ArgumentNullException.ThrowIfNull(loader);
        // Under "ddp" each process gets its shard (padded so all take the same number of steps, shuffled if the loader was).
        return Transfer(Strategy.ShardLoader(loader, training: true));
    }

    private IEnumerable<TBatch> Transfer<TBatch>(IEnumerable<TBatch> loader)
    {
        foreach (var batch in loader) yield return ToDevice(batch);
    }

    /// <summary>A batch (tensor, list or dictionary of tensors) on the device and in the input dtype.</summary>
    public TBatch ToDevice<TBatch>(TBatch batch) => Strategy.BatchToDevice(batch);

    /// <summary>The precision's forward scope (autocast for mixed precision); wrap the forward pass and loss in it.</summary>
    public IDisposable Autocast() => Strategy.Precision.ForwardContext() ?? NoScope.Instance;

    /// <summary>Backward pass of <paramref name="loss"/>, scaled when the precision scales losses; then the set-up modules' gradients are made the same on every process.</summary>
    public void Backward(Tensor loss)
    {
        ArgumentNullException.ThrowIfNull(loss);
        Strategy.Backward(loss);
        // Averaging is linear, so averaging after each of several accumulated backward passes still gives the mean.
        foreach (var module in _modules) Strategy.ReduceGradients(module);
    }

    /// <summary>Steps <paramref name="optimizer"/> through the precision (unscaling first, skipping on overflow with loss scaling); returns whether it stepped.</summary>
    public bool Step(optim.Optimizer optimizer)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        return Strategy.OptimizerStep(optimizer, closure: null, beforeStep: null) == OptimizerStepOutcome.Stepped;
    }

    /// <summary>Clips the gradients of <paramref name="optimizer"/>'s parameters by total norm (<paramref name="maxNorm"/>) or by value (<paramref name="clipVal"/>); returns the total norm before clipping when clipping by norm.</summary>
    public double? ClipGradients(optim.Optimizer optimizer, double? clipVal = null, double? maxNorm = null)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        if ((clipVal is null) == (maxNorm is null))
            throw new ArgumentException("ClipGradients needs exactly one of clipVal (clip by value) or maxNorm (clip by norm).");
        if (clipVal is { } value)
        {
            if (!(value > 0)) throw new ArgumentOutOfRangeException(nameof(clipVal), value, $"clipVal = {value} is not allowed: it must be greater than 0.");
            return Strategy.ClipGradients(optimizer, value, GradientClipAlgorithm.Value);
        }
        if (!(maxNorm > 0)) throw new ArgumentOutOfRangeException(nameof(maxNorm), maxNorm, $"maxNorm = {maxNorm} is not allowed: it must be greater than 0.");
        return Strategy.ClipGradients(optimizer, maxNorm!.Value, GradientClipAlgorithm.Norm);
    }

    /// <summary>Reduces a tensor across processes ("mean", "sum", "min", "max") into a new tensor; with one process, a copy.</summary>
    public Tensor AllReduce(Tensor tensor, string reduceOp = "mean")
    {
        ArgumentNullException.ThrowIfNull(tensor);
        var reduce = reduceOp switch
        {
            "mean" => ReduceFx.Mean,
            "sum" => ReduceFx.Sum,
            "min" => ReduceFx.Min,
            "max" => ReduceFx.Max,
            _ => throw new ArgumentOutOfRangeException(nameof(reduceOp), reduceOp, $"reduceOp = \"{reduceOp}\" is not allowed: use \"mean\", \"sum\", \"min\" or \"max\"."),
        };
        return Strategy.Reduce(tensor, reduce);
    }

    /// <summary>Every process's tensor (same shape everywhere) stacked along a new first dimension in rank order: shape [WorldSize, ...].</summary>
    public Tensor AllGather(Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        return Strategy.AllGather(tensor);
    }

    /// <summary>Process <paramref name="src"/>'s tensor on every process (same shape and dtype everywhere), as a new tensor.</summary>
    public Tensor Broadcast(Tensor tensor, int src = 0)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        if (src < 0 || src >= WorldSize)
            throw new ArgumentOutOfRangeException(nameof(src), src, $"src = {src} is not allowed: use a rank from 0 to {WorldSize - 1}.");
        return Strategy.Broadcast(tensor, src);
    }

    /// <summary>Waits for every process; with one process it returns at once.</summary>
    public void Barrier() => Strategy.Barrier();

    /// <summary>Sends one metric to the loggers.</summary>
    public void Log(string name, double value, long step = 0) => LogDict(new Dictionary<string, double> { [name] = value }, step);

    /// <summary>Sends metrics to the loggers.</summary>
    public void LogDict(IReadOnlyDictionary<string, double> metrics, long step = 0)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        if (!IsGlobalZero) return;
        foreach (var logger in Options.Loggers)
        {
            logger.LogMetrics(metrics, step);
            logger.Save();
        }
    }

    /// <summary>
    /// Saves a state dictionary: modules and optimizers as their state dicts, everything else (numbers, strings, lists)
    /// as JSON. Written to a temporary file and renamed, by process 0 only; every process returns once it is written.
    /// Under "ddp_sharded" every process first writes its shard of the optimizers' state beside the file.
    /// </summary>
    public void Save(string path, IReadOnlyDictionary<string, object> state)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        ArgumentNullException.ThrowIfNull(state);
        JsonObject? shards = null;
        if (Strategy is DdpShardedStrategy sharded)
        {
            var optimizers = state.Where(p => p.Value is optim.Optimizer).OrderBy(p => p.Key, StringComparer.Ordinal).ToList();
            if (optimizers.Count > 0)
                shards = new JsonObject
                {
                    ["keys"] = new JsonArray(optimizers.Select(p => (JsonNode)p.Key).ToArray()),
                    ["manifest"] = sharded.WriteOptimizerShards(path, 0, optimizers.Select(p => (optim.Optimizer)p.Value).ToList()),
                };
        }
        // Rank 0 writes; the barrier keeps any process from loading the file before it is complete.
        if (IsGlobalZero)
        {
            Write(path, state, shards);
            if (shards is not null) OptimizerShardFiles.RemoveOlder(path, shards["manifest"]!.AsObject());
        }
        Barrier();
    }

    private static void Write(string path, IReadOnlyDictionary<string, object> state, JsonObject? shards) => DurableFile.Write(path, file =>
    {
        using var archive = new ZipArchive(file, ZipArchiveMode.Create, leaveOpen: true);
        var values = new JsonObject();
        if (shards is not null)
            using (var entry = archive.CreateEntry(ShardsEntry).Open())
            using (var writer = new Utf8JsonWriter(entry))
                shards.WriteTo(writer);
        foreach (var (key, value) in state)
        {
            switch (value)
            {
                case OptimizerHelper when shards is not null:
                    break;
                case nn.Module module:
                    using (var stream = new BufferedStream(archive.CreateEntry($"modules/{key}", CompressionLevel.NoCompression).Open(), 1 << 16))
                        StateDictStream.Write(stream, module);
                    break;
                case OptimizerHelper optimizer:
                    using (var writer = new BinaryWriter(new BufferedStream(archive.CreateEntry($"optimizers/{key}", CompressionLevel.NoCompression).Open(), 1 << 16)))
                    using (MemoryLayout.ContiguousState(optimizer))
                        optimizer.save_state_dict(writer);
                    break;
                default:
                    values[key] = JsonSerializer.SerializeToNode(value);
                    break;
            }
        }
        using var json = archive.CreateEntry("state.json").Open();
        JsonSerializer.Serialize(json, values);
    });

    /// <summary>
    /// Loads what <see cref="Save"/> wrote: modules and optimizers named in <paramref name="state"/> are restored in place;
    /// the other saved values are returned.
    /// </summary>
    public Dictionary<string, JsonNode?> Load(string path, IReadOnlyDictionary<string, object>? state = null, bool strict = true)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        Barrier();
        if (!File.Exists(path)) throw new FileNotFoundException($"Fabric checkpoint '{path}' does not exist.", path);
        using var archive = ZipFile.OpenRead(path);
        var loaded = new List<optim.Optimizer>();
        if (archive.GetEntry(ShardsEntry) is { } shardsEntry)
        {
            JsonObject shards;
            using (var stream = shardsEntry.Open()) shards = JsonNode.Parse(stream)!.AsObject();
            var keys = shards["keys"]!.AsArray().Select(k => (string)k!).ToList();
            var given = state ?? new Dictionary<string, object>();
            if (keys.Any(k => !given.ContainsKey(k)) && keys.Any(given.ContainsKey))
                throw new ArgumentException(
                    $"Fabric checkpoint '{path}' holds the sharded state of optimizers {string.Join(", ", keys.Select(k => $"'{k}'"))}: pass all of them to Load, or none.", nameof(state));
            if (keys.All(given.ContainsKey))
            {
                loaded = keys.Select(k => given[k] as optim.Optimizer ?? throw new ArgumentException($"State entry '{k}' is a {given[k].GetType().Name}; the checkpoint holds an optimizer there.", nameof(state))).ToList();
                OptimizerShardFiles.Restore(path, shards["manifest"]!.AsObject(), loaded);
            }
        }
        foreach (var (key, value) in state ?? new Dictionary<string, object>())
        {
            switch (value)
            {
                case optim.Optimizer optimizer when loaded.Contains(optimizer):
                    break;
                case nn.Module module:
                    using (var stream = new BufferedStream(Entry(archive, $"modules/{key}", path).Open(), 1 << 16))
                        StateDictStream.Read(stream, module, strict, $"Fabric checkpoint '{path}' (module '{key}')");
                    break;
                case OptimizerHelper optimizer:
                    using (var reader = new BinaryReader(new BufferedStream(Entry(archive, $"optimizers/{key}", path).Open(), 1 << 16)))
                    {
                        MemoryLayout.MakeStateContiguous(optimizer);
                        optimizer.load_state_dict(reader);
                    }
                    loaded.Add(optimizer);
                    break;
                default:
                    throw new ArgumentException($"State entry '{key}' is a {value.GetType().Name}; only modules and optimizers are restored in place (other values are returned).", nameof(state));
            }
        }
        Strategy.OptimizerStateLoaded(loaded);
        using var json = Entry(archive, "state.json", path).Open();
        var values = JsonNode.Parse(json)?.AsObject() ?? new JsonObject();
        return values.ToDictionary(p => p.Key, p => p.Value?.DeepClone());
    }

    /// <summary>Where a sharded strategy's optimizer state lives: the optimizers' keys and the shards' manifest.</summary>
    private const string ShardsEntry = "optimizer_shards.json";

    /// <summary>Seeds every source of randomness; see <see cref="LightningSeed.SeedEverything"/>.</summary>
    public static int SeedEverything(int seed) => LightningSeed.SeedEverything(seed);

    private static ZipArchiveEntry Entry(ZipArchive archive, string name, string path) =>
        archive.GetEntry(name) ?? throw new InvalidDataException($"Fabric checkpoint '{path}' has no entry '{name}'.");

    private sealed class NoScope : IDisposable
    {
        public static readonly NoScope Instance = new();
        public void Dispose() { }
    }
}
