using System.IO.Compression;
using System.Text.Json;
using System.Text.Json.Nodes;
using Lightning.Checkpoints;
using static TorchSharp.torch;

namespace Lightning.Interop;

/// <summary>
/// Reads a PyTorch Lightning <c>.ckpt</c> (the dict that <c>Trainer.save_checkpoint</c> writes with <c>torch.save</c>) as a
/// <see cref="Checkpoint"/>: <c>state_dict</c> under Lightning's key names, <c>hyper_parameters</c>, <c>epoch</c>,
/// <c>global_step</c>, <c>optimizer_states</c> and the step counts of <c>lr_schedulers</c>. What cannot be carried over
/// (callback and datamodule state, the random generator state, other loop counters) is listed in
/// <see cref="Checkpoint.SkippedOnImport"/>.
/// </summary>
internal static class LightningCheckpointReader
{
    public static Checkpoint Read(ZipArchive archive, string path)
    {
        var root = TorchFile.Read(archive, path) as Dictionary<object, object?>
                   ?? throw new InvalidDataException($"'{path}' is a PyTorch file but not a Lightning checkpoint: it does not hold a dict.");
        if (!root.TryGetValue("state_dict", out var stateObject) || stateObject is not Dictionary<object, object?> stateDict)
        {
            Dispose(root);
            throw new InvalidDataException(
                $"'{path}' is a PyTorch file but not a Lightning checkpoint: it has no 'state_dict' dict " +
                $"(its keys: {string.Join(", ", root.Keys)}). A plain state dict loads with module.LoadStateDict(path).");
        }
        var skipped = new List<string>();
        var weights = new List<(string, Tensor)>();
        foreach (var (key, value) in stateDict)
            if (key is string name && value is Tensor tensor) weights.Add((name, tensor));
            else skipped.Add($"state_dict entry '{key}' is a {StateDictExtensions.Describe(value)}, not a tensor");

        var epoch = (int)AsLong(root.GetValueOrDefault("epoch"), path, "epoch");
        var globalStep = AsLong(root.GetValueOrDefault("global_step"), path, "global_step");
        var hparams = Hyperparameters(root.GetValueOrDefault("hyper_parameters"), skipped);

        var optimizerStates = (root.GetValueOrDefault("optimizer_states") as List<object?>)?.Select(s => s as Dictionary<object, object?>).ToList();
        var weightsOnly = optimizerStates is null;
        var schedulerSteps = (root.GetValueOrDefault("lr_schedulers") as List<object?> ?? [])
            .Select(s => s is Dictionary<object, object?> d && d.GetValueOrDefault("last_epoch") is long last ? (int)last : 0).ToArray();

        // Lightning resumes at the epoch its loop completed; a checkpoint taken at an epoch's end (ModelCheckpoint's
        // default) has processed that epoch, so training goes on with the next one.
        var processed = Find(root, "loops", "fit_loop", "epoch_progress", "current", "processed") as long?;
        var startEpoch = (int)(processed ?? epoch + 1);
        var totalBatches = Find(root, "loops", "fit_loop", "epoch_loop.batch_progress", "total", "completed") as long? ?? globalStep;
        var loops = new JsonObject
        {
            ["epoch"] = startEpoch,
            ["batches_done"] = 0,
            ["total_batches"] = totalBatches,
            ["phase"] = "BetweenEpochs",
            ["global_step"] = globalStep,
        };
        if (root.ContainsKey("callbacks")) skipped.Add("callback state ('callbacks'): Lightning's callbacks keep Python state that Lightning.NET's callbacks do not read");
        if (root.Keys.OfType<string>().Any(k => k.StartsWith("datamodule", StringComparison.Ordinal) || k == "LightningDataModule"))
            skipped.Add("datamodule state and hyperparameters");
        if (!weightsOnly)
        {
            skipped.Add("random generator state: a Lightning checkpoint holds none, so the resumed run draws different random numbers than the original");
            if (processed is null) skipped.Add($"loop progress ('loops' has no fit_loop.epoch_progress): training resumes at the start of epoch {startEpoch}");
            else skipped.Add($"mid-epoch progress: training resumes at the start of epoch {startEpoch}");
            if (schedulerSteps.Length > 0) skipped.Add("learning-rate scheduler state other than its step count (last_epoch), which is replayed");
        }
        return Checkpoint.FromPyTorch(path, epoch, globalStep, hparams, weights, optimizerStates?.Select(s => s ?? []).ToList(),
            loops, schedulerSteps, weightsOnly, skipped);
    }

    private static object? Find(object? value, params string[] path)
    {
        foreach (var key in path)
        {
            var dict = value as Dictionary<object, object?> ?? (value as PythonObject)?.AsDictionary();
            if (dict is null || !dict.TryGetValue(key, out value)) return null;
        }
        return value;
    }

    private static long AsLong(object? value, string path, string key) => value switch
    {
        long l => l,
        Tensor t when t.numel() == 1 => t.item<long>(),
        null => 0,
        _ => throw new InvalidDataException($"'{path}': the Lightning checkpoint's '{key}' is a {StateDictExtensions.Describe(value)}, not an integer."),
    };

    /// <summary>Python values as JSON; values JSON cannot hold (tensors, objects) are skipped and listed.</summary>
    private static Dictionary<string, JsonElement> Hyperparameters(object? value, List<string> skipped)
    {
        var result = new Dictionary<string, JsonElement>();
        var dict = value as Dictionary<object, object?> ?? (value as PythonObject)?.AsDictionary();
        if (dict is null)
        {
            if (value is not null) skipped.Add($"hyper_parameters: a {StateDictExtensions.Describe(value)}, not a dict");
            return result;
        }
        foreach (var (key, item) in dict)
        {
            var node = ToJson(item);
            if (node.Ok) result[key.ToString()!] = JsonSerializer.SerializeToElement(node.Node);
            else skipped.Add($"hyperparameter '{key}': a {StateDictExtensions.Describe(item)} has no JSON form");
        }
        return result;
    }

    private static (bool Ok, JsonNode? Node) ToJson(object? value)
    {
        switch (value)
        {
            case null: return (true, null);
            case bool b: return (true, JsonValue.Create(b));
            case long l: return (true, JsonValue.Create(l));
            case double d: return (true, JsonValue.Create(d));
            case string s: return (true, JsonValue.Create(s));
            case object?[] or List<object?>:
                var array = new JsonArray();
                foreach (var item in value as IEnumerable<object?> ?? [])
                {
                    var (ok, node) = ToJson(item);
                    if (!ok) return (false, null);
                    array.Add(node);
                }
                return (true, array);
            case Dictionary<object, object?> or PythonObject:
                var dict = value as Dictionary<object, object?> ?? ((PythonObject)value).AsDictionary();
                if (dict is null) return (false, null);
                var obj = new JsonObject();
                foreach (var (k, v) in dict)
                {
                    var (ok, node) = ToJson(v);
                    if (!ok) return (false, null);
                    obj[k.ToString()!] = node;
                }
                return (true, obj);
            default: return (false, null);
        }
    }

    private static void Dispose(object? value)
    {
        switch (value)
        {
            case Tensor t: t.Dispose(); break;
            case Dictionary<object, object?> d: foreach (var v in d.Values) Dispose(v); break;
            case IEnumerable<object?> items: foreach (var v in items) Dispose(v); break;
        }
    }
}
