using static TorchSharp.torch;

namespace Lightning.Interop;

/// <summary>
/// Copies named tensors into a module's parameters and buffers. A name that is not one of the module's is matched
/// ignoring leading underscores, underscores and case in each dotted part (PyTorch's <c>layer_norm</c> is TorchSharp's
/// <c>layerNorm</c> or <c>_layer_norm</c>), and torch.compile's <c>_orig_mod</c> parts are dropped (a prefix when the
/// whole module was compiled, after the attribute when a submodule was). Values are cast to the module's dtypes, as
/// PyTorch's <c>load_state_dict</c> does; shapes must match.
/// </summary>
internal static class StateDictLoader
{
    public static StateDictLoadResult Load(nn.Module module, IEnumerable<(string Name, Tensor Value)> entries, bool strict,
        Func<string, string?>? keyMap, string source)
    {
        var target = module.state_dict();
        var byNormalName = target.Keys.GroupBy(Normalize).Where(g => g.Count() == 1).ToDictionary(g => g.Key, g => g.Single());
        var assigned = new List<(string Key, Tensor Target, Tensor Value)>();
        var loaded = new HashSet<string>(StringComparer.Ordinal);
        var unexpected = new List<string>();
        var misshaped = new List<string>();
        foreach (var (fileKey, value) in entries)
        {
            var key = keyMap is null ? fileKey : keyMap(fileKey);
            if (key is null) continue;                       // the map drops it
            if (!target.ContainsKey(key) && key.Split('.') is var parts && parts.Contains("_orig_mod"))
                key = string.Join('.', parts.Where(part => part != "_orig_mod"));
            if (!target.ContainsKey(key) && byNormalName.TryGetValue(Normalize(key), out var matched)) key = matched;
            if (!target.TryGetValue(key, out var tensor))
            {
                unexpected.Add($"{fileKey} {PickleReader.Shape(value.shape)}");
                continue;
            }
            if (!tensor.shape.SequenceEqual(value.shape))
            {
                misshaped.Add($"{fileKey}: {PickleReader.Shape(value.shape)} in the file, {PickleReader.Shape(tensor.shape)} in the module" +
                              (key == fileKey ? "" : $" ('{key}')"));
                continue;
            }
            loaded.Add(key);
            assigned.Add((key, tensor, value));
        }
        var missing = target.Where(kv => !loaded.Contains(kv.Key)).Select(kv => $"{kv.Key} {PickleReader.Shape(kv.Value.shape)}").ToList();
        if (misshaped.Count > 0 || (strict && (missing.Count > 0 || unexpected.Count > 0)))
        {
            var problems = new List<string>();
            if (missing.Count > 0 && strict) problems.Add($"missing key(s) (in the module, not in the file): {string.Join(", ", missing)}");
            if (unexpected.Count > 0 && strict) problems.Add($"unexpected key(s) (in the file, not in the module): {string.Join(", ", unexpected)}");
            if (misshaped.Count > 0) problems.Add($"mis-shaped key(s): {string.Join("; ", misshaped)}");
            throw new InvalidDataException(
                $"Error(s) loading the state dict of {module.GetType().Name} from {source}: {string.Join(". ", problems)}." +
                (strict && misshaped.Count == 0 ? " Pass strict: false to load the matching keys, or a keyMap to rename them." : ""));
        }
        using (no_grad())
            foreach (var (_, tensor, value) in assigned) tensor.copy_(value);
        return new StateDictLoadResult(
            missing.Select(m => m[..m.IndexOf(' ')]).ToList(),
            unexpected.Select(u => u[..u.IndexOf(' ')]).ToList());
    }

    internal static string Normalize(string key) =>
        string.Join('.', key.Split('.').Select(part => part.TrimStart('_').Replace("_", "", StringComparison.Ordinal).ToLowerInvariant()));
}
