using Lightning.IO;
using static TorchSharp.torch;

namespace Lightning.Interop;

/// <summary>
/// PyTorch's <c>model.load_state_dict(torch.load(path))</c> and <c>torch.save(model.state_dict(), path)</c> for TorchSharp
/// modules: PyTorch <c>.pt</c>/<c>.pth</c> files (the zip format of <c>torch.save</c>) and <c>.safetensors</c> files.
/// </summary>
public static class StateDictExtensions
{
    /// <summary>
    /// Loads a state dict written by PyTorch (<c>torch.save(model.state_dict(), path)</c>), by safetensors, or a
    /// PyTorch Lightning <c>.ckpt</c> (its <c>state_dict</c>); the format is told by the file's content, not its name.
    /// </summary>
    /// <param name="module">The module to load into (parameters and buffers, in place).</param>
    /// <param name="path">The file.</param>
    /// <param name="strict">When true (PyTorch's default) every key must match; when false missing and unexpected keys are returned instead.</param>
    /// <param name="keyMap">Renames the file's keys to the module's (return null to drop a key); applied before matching.</param>
    /// <returns>The keys left out (empty when strict).</returns>
    /// <exception cref="InvalidDataException">The file is not readable, or keys are missing, unexpected (when strict) or mis-shaped; the message lists them all with their shapes.</exception>
    public static StateDictLoadResult LoadStateDict(this nn.Module module, string path, bool strict = true, Func<string, string?>? keyMap = null)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!File.Exists(path)) throw new FileNotFoundException($"State dict file '{path}' does not exist.", path);
        var entries = ReadStateDict(path);
        try
        {
            return StateDictLoader.Load(module, entries, strict, keyMap, $"'{path}'");
        }
        finally
        {
            foreach (var (_, tensor) in entries) tensor.Dispose();
        }
    }

    /// <summary>
    /// Writes the module's state dict so that PyTorch reads it: a <c>.safetensors</c> path gets a safetensors file, any
    /// other a <c>torch.save</c> file (<c>model.load_state_dict(torch.load(path))</c>). Written durably (temporary file,
    /// flushed, renamed).
    /// </summary>
    public static void SaveStateDict(this nn.Module module, string path)
    {
        ArgumentNullException.ThrowIfNull(module);
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        var state = module.state_dict().Select(kv => (kv.Key, kv.Value)).ToList();
        if (Path.GetExtension(path).Equals(".safetensors", StringComparison.OrdinalIgnoreCase))
            DurableFile.Write(path, stream => SafeTensorsFile.Write(stream, state));
        else
            DurableFile.Write(path, stream => TorchFile.WriteStateDict(stream, state));
    }

    /// <summary>Reads the named tensors of a PyTorch, Lightning or safetensors file; the caller owns them.</summary>
    internal static List<(string Name, Tensor Value)> ReadStateDict(string path)
    {
        Span<byte> head = stackalloc byte[9];
        int read;
        using (var file = File.OpenRead(path)) read = file.ReadAtLeast(head, 9, throwOnEndOfStream: false);
        // A safetensors header length can start with any byte, so its '{' is checked first; a zip's ninth byte is never '{'.
        if (read == 9 && head[8] == (byte)'{') return SafeTensorsFile.Read(path);
        if (read >= 4 && head[..4].SequenceEqual("PK\x03\x04"u8) || read >= 1 && head[0] == 0x80) return FromTorch(path);
        throw new InvalidDataException(
            $"'{path}' is neither a PyTorch file (a zip, as torch.save writes) nor a safetensors file (an 8-byte header length, then JSON).");
    }

    private static List<(string, Tensor)> FromTorch(string path)
    {
        var root = TorchFile.Read(path);
        var dict = root as Dictionary<object, object?>;
        // A Lightning checkpoint, or any dict that keeps the weights under "state_dict".
        if (dict is not null && dict.TryGetValue("state_dict", out var inner) && inner is Dictionary<object, object?> weights) dict = weights;
        var result = new List<(string, Tensor)>();
        foreach (var (key, value) in dict ?? throw new InvalidDataException($"'{path}' holds a {Describe(root)}, not a state dict (a dict of tensors)."))
        {
            if (key is string name && value is Tensor tensor) result.Add((name, tensor));
            else
            {
                foreach (var (_, t) in result) t.Dispose();
                throw new InvalidDataException($"'{path}' is not a state dict: its entry '{key}' is a {Describe(value)}, not a tensor.");
            }
        }
        return result;
    }

    internal static string Describe(object? value) => value switch
    {
        null => "None",
        PythonObject o => $"Python {o.ClassName}",
        Dictionary<object, object?> => "dict",
        List<object?> => "list",
        _ => value.GetType().Name,
    };
}
