using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using Lightning.IO;
using Lightning.Strategies;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lightning.Checkpoints;

/// <summary>
/// Optimizer state written in shards by a sharded strategy: each rank writes one file into
/// <c>&lt;checkpoint&gt;.shards/&lt;save id&gt;/rank-R-of-N.bin</c>, all at once, and the checkpoint file, written after
/// them, names the folder (its manifest). A shard file holds a JSON header (for each optimizer: its type, the sizes of
/// its parameters, its groups' options, and the rank's pieces, each a range of one parameter with that range of every
/// state tensor and the state's scalars) followed by the raw tensor data. Pieces are ranges of the original parameters,
/// so any number of shards restores into any world size, or into one process.
/// </summary>
internal static class OptimizerShardFiles
{
    private const string Magic = "LNSHARD1";

    /// <summary>A save's folder name: ordered by global step and time, so older saves of the same file sort first.</summary>
    public static string NewId(long globalStep) =>
        string.Create(CultureInfo.InvariantCulture, $"{globalStep:D12}-{DateTime.UtcNow.Ticks:D19}");

    public static string Folder(string checkpointPath) => checkpointPath + ".shards";

    private static string FileName(int rank, int world) => string.Create(CultureInfo.InvariantCulture, $"rank-{rank:D5}-of-{world:D5}.bin");

    /// <summary>What the checkpoint file records: the save's folder (relative to the file's folder) and its files.</summary>
    public static JsonObject Manifest(string checkpointPath, string id, int world) => new()
    {
        ["folder"] = Path.GetFileName(Folder(checkpointPath)) + "/" + id,
        ["world_size"] = world,
        ["files"] = new JsonArray(Enumerable.Range(0, world).Select(r => (JsonNode)FileName(r, world)).ToArray()),
    };

    /// <summary>Writes this rank's shards durably (temporary file, flushed, renamed).</summary>
    public static void Write(string checkpointPath, string id, IReadOnlyList<ShardedOptimizer> shards, int rank, int world)
    {
        var folder = Path.Combine(Folder(checkpointPath), id);
        Directory.CreateDirectory(folder);
        var tensors = new List<Tensor>();
        long position = 0;
        var optimizers = new JsonArray();
        foreach (var shard in shards)
        {
            var pieces = new JsonArray();
            foreach (var piece in shard.Pieces)
            {
                var state = OptimizerStates.Of(shard.Optimizer, piece.Tensor);
                var scalars = new JsonObject();
                foreach (var field in OptimizerStates.ScalarFields(state.GetType()))
                    scalars[field.Name] = JsonValue.Create(Convert.ToDouble(field.GetValue(state), CultureInfo.InvariantCulture));
                var entries = new JsonObject();
                foreach (var field in OptimizerStates.TensorFields(state.GetType()))
                {
                    if (field.GetValue(state) is not Tensor tensor) continue;
                    var data = tensor.detach().cpu().contiguous();
                    entries[field.Name] = new JsonObject { ["dtype"] = data.dtype.ToString(), ["at"] = position };
                    position += data.numel() * data.ElementSize;
                    tensors.Add(data);
                }
                pieces.Add(new JsonObject
                {
                    ["param"] = piece.Index, ["offset"] = piece.Offset, ["length"] = piece.Length,
                    ["scalars"] = scalars, ["tensors"] = entries,
                });
            }
            optimizers.Add(new JsonObject
            {
                ["type"] = shard.Original.GetType().FullName,
                ["sizes"] = new JsonArray(shard.ParameterSizes.Select(n => (JsonNode)n).ToArray()),
                ["groups"] = new JsonArray(shard.Original.ParamGroups.Cast<ParamGroup>().Select(g => (JsonNode)Options(g)).ToArray()),
                ["pieces"] = pieces,
            });
        }
        var header = Encoding.UTF8.GetBytes(new JsonObject { ["rank"] = rank, ["world_size"] = world, ["optimizers"] = optimizers }.ToJsonString());
        DurableFile.Write(Path.Combine(folder, FileName(rank, world)), stream =>
        {
            using var writer = new BinaryWriter(stream, Encoding.UTF8, leaveOpen: true);
            writer.Write(Encoding.ASCII.GetBytes(Magic));
            writer.Write(header.Length);
            writer.Write(header);
            foreach (var tensor in tensors) writer.Write(tensor.bytes);
        });
    }

    /// <summary>The first shard file the manifest names that is missing or shorter than its header says; null when all are there.</summary>
    public static string? Missing(string checkpointPath, JsonObject manifest)
    {
        foreach (var file in Files(checkpointPath, manifest))
        {
            if (!File.Exists(file)) return file;
            try
            {
                using var shard = Open(file);
            }
            catch (InvalidDataException)
            {
                return file;
            }
        }
        return null;
    }

    /// <summary>
    /// Fills the state of <paramref name="optimizers"/> (the module's own, over whole parameters) from every shard: each
    /// parameter's state is put together from the pieces of it that the ranks held, and the groups' options (learning
    /// rates included) are set as saved.
    /// </summary>
    public static void Restore(string checkpointPath, JsonObject manifest, IReadOnlyList<optim.Optimizer> optimizers)
    {
        var shards = Files(checkpointPath, manifest).Select(Open).ToList();
        try
        {
            var saved = shards[0].Header["optimizers"]!.AsArray();
            if (saved.Count != optimizers.Count)
                throw new InvalidOperationException(
                    $"Checkpoint '{checkpointPath}' holds the state of {saved.Count} optimizer(s) but the module configured {optimizers.Count}.");
            using var noGrad = no_grad();
            for (int o = 0; o < optimizers.Count; o++)
            {
                var optimizer = OptimizerStates.Helper(optimizers[o], "ddp_sharded");
                var parameters = optimizer.ParamGroups.Cast<ParamGroup>().SelectMany(g => g.Parameters).ToList();
                var sizes = saved[o]!["sizes"]!.AsArray().Select(n => (long)n!).ToList();
                if (!sizes.SequenceEqual(parameters.Select(p => p.numel())))
                    throw new InvalidOperationException(
                        $"Checkpoint '{checkpointPath}': optimizer {o} was saved over parameters of sizes [{string.Join(", ", sizes)}], " +
                        $"but it now holds [{string.Join(", ", parameters.Select(p => p.numel()))}].");
                var type = (string?)saved[o]!["type"];
                if (type != optimizer.GetType().FullName)
                    throw new InvalidOperationException(
                        $"Checkpoint '{checkpointPath}': optimizer {o} was a {type}, but the module configured a {optimizer.GetType().FullName}.");
                var groups = optimizer.ParamGroups.Cast<ParamGroup>().ToList();
                var options = saved[o]!["groups"]!.AsArray();
                for (int g = 0; g < groups.Count && g < options.Count; g++) SetOptions(groups[g], options[g]!.AsObject());
                foreach (var shard in shards)
                    foreach (var piece in shard.Header["optimizers"]![o]!["pieces"]!.AsArray())
                        shard.ReadPiece(piece!.AsObject(), parameters, p => OptimizerStates.Of(optimizer, p));
            }
        }
        finally
        {
            foreach (var shard in shards) shard.Dispose();
        }
    }

    /// <summary>Removes the shard folders of earlier saves of the same file, once the file names the newest.</summary>
    public static void RemoveOlder(string checkpointPath, JsonObject manifest)
    {
        var current = ((string)manifest["folder"]!).Split('/')[^1];
        var folder = Folder(checkpointPath);
        if (!Directory.Exists(folder)) return;
        foreach (var save in Directory.EnumerateDirectories(folder))
            if (string.CompareOrdinal(Path.GetFileName(save), current) < 0) TryDelete(save);
    }

    /// <summary>Removes every shard of a checkpoint file (when the file itself is removed).</summary>
    public static void RemoveAll(string checkpointPath)
    {
        var folder = Folder(checkpointPath);
        if (Directory.Exists(folder)) TryDelete(folder);
    }

    private static void TryDelete(string folder)
    {
        try
        {
            Directory.Delete(folder, recursive: true);
        }
        catch (IOException)
        {
            // Another process may still be reading it; a later save removes it.
        }
    }

    private static IEnumerable<string> Files(string checkpointPath, JsonObject manifest)
    {
        var relative = (string?)manifest["folder"] ?? throw new InvalidDataException("the optimizer shard manifest names no folder");
        if (relative.Contains("..", StringComparison.Ordinal) || Path.IsPathRooted(relative))
            throw new InvalidDataException($"the optimizer shard folder '{relative}' is outside the checkpoint's folder");
        var folder = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(checkpointPath))!, relative);
        return (manifest["files"]?.AsArray() ?? []).Select(f => Path.Combine(folder, Path.GetFileName((string)f!)));
    }

    private static JsonObject Options(ParamGroup group)
    {
        var options = new JsonObject
        {
            ["LearningRate"] = group.LearningRate,
            ["InitialLearningRate"] = group.InitialLearningRate,
        };
        foreach (var field in group.Options.GetType().GetFields())
            if (field.GetValue(group.Options) is { } value && (value is double or bool or float or int or long))
                options[field.Name] = JsonValue.Create(Convert.ToDouble(value, CultureInfo.InvariantCulture));
        return options;
    }

    private static void SetOptions(ParamGroup group, JsonObject saved)
    {
        if ((double?)saved["LearningRate"] is { } rate) group.LearningRate = rate;
        if ((double?)saved["InitialLearningRate"] is { } initial) group.InitialLearningRate = initial;
        foreach (var field in group.Options.GetType().GetFields())
        {
            if ((double?)saved[field.Name] is not { } value) continue;
            var type = Nullable.GetUnderlyingType(field.FieldType) ?? field.FieldType;
            field.SetValue(group.Options, type == typeof(bool) ? value != 0 : Convert.ChangeType(value, type, CultureInfo.InvariantCulture));
        }
    }

    private static Shard Open(string file) => new(file);

    /// <summary>An open shard file: its header, and its tensor data read range by range.</summary>
    private sealed class Shard : IDisposable
    {
        private readonly FileStream _stream;
        private readonly long _dataStart;

        public Shard(string file)
        {
            _stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
            try
            {
                using var reader = new BinaryReader(_stream, Encoding.UTF8, leaveOpen: true);
                if (Encoding.ASCII.GetString(reader.ReadBytes(Magic.Length)) != Magic) throw new InvalidDataException($"'{file}' is not an optimizer shard");
                var length = reader.ReadInt32();
                if (length <= 0 || length > _stream.Length) throw new InvalidDataException($"'{file}' has a header of {length} bytes");
                Header = JsonNode.Parse(reader.ReadBytes(length))!.AsObject();
                _dataStart = _stream.Position;
                long end = 0;
                foreach (var optimizer in Header["optimizers"]!.AsArray())
                    foreach (var piece in optimizer!["pieces"]!.AsArray())
                        foreach (var (_, entry) in piece!["tensors"]!.AsObject())
                            end = Math.Max(end, (long)entry!["at"]! + (long)piece["length"]! * ElementSize(Dtype(entry)));
                if (_dataStart + end > _stream.Length) throw new InvalidDataException($"'{file}' ends early");
            }
            catch (Exception e) when (e is EndOfStreamException or System.Text.Json.JsonException or NullReferenceException or InvalidOperationException)
            {
                _stream.Dispose();
                throw new InvalidDataException($"'{file}' is not a complete optimizer shard: {e.Message}", e);
            }
            catch
            {
                _stream.Dispose();
                throw;
            }
        }

        public JsonObject Header { get; }

        /// <summary>Copies one saved piece into the whole parameter's state (tensors created where the state has none yet).</summary>
        public void ReadPiece(JsonObject piece, IReadOnlyList<Parameter> parameters, Func<Parameter, OptimizerState> stateOf)
        {
            var parameter = parameters[(int)piece["param"]!];
            long offset = (long)piece["offset"]!, length = (long)piece["length"]!;
            var state = stateOf(parameter);
            foreach (var field in OptimizerStates.ScalarFields(state.GetType()))
                if ((double?)piece["scalars"]?[field.Name] is { } value)
                    field.SetValue(state, field.FieldType == typeof(bool) ? value != 0 : Convert.ChangeType(value, field.FieldType, CultureInfo.InvariantCulture));
            foreach (var field in OptimizerStates.TensorFields(state.GetType()))
            {
                if (piece["tensors"]?[field.Name] is not JsonObject entry) continue;
                var dtype = Dtype(entry);
                if (field.GetValue(state) is not Tensor target || target.numel() != parameter.numel())
                    OptimizerStates.Set(field, state, target = zeros_like(parameter, dtype: parameter.dtype).DetachFromDisposeScope());
                using var data = empty(length, dtype);
                _stream.Position = _dataStart + (long)entry["at"]!;
                _stream.ReadExactly(data.bytes);
                using var flat = target.view(-1);
                using var region = flat.narrow(0, offset, length);
                region.copy_(data);
            }
        }

        private static ScalarType Dtype(JsonNode entry) => Enum.Parse<ScalarType>((string)entry["dtype"]!);

        private static long ElementSize(ScalarType dtype)
        {
            using var probe = empty(0, dtype);
            return probe.ElementSize;
        }

        public void Dispose() => _stream.Dispose();
    }
}
