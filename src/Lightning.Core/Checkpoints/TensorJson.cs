using System.Text.Json.Nodes;
using static TorchSharp.torch;

namespace Lightning.Checkpoints;

/// <summary>Tensors inside callback state (<see cref="Callbacks.Callback.SaveState"/>), which is JSON: dtype, shape and the raw bytes in base64.</summary>
public static class TensorJson
{
    /// <summary>The tensor's dtype, shape and bytes (copied to the CPU first).</summary>
    public static JsonObject ToJson(Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        using var scope = NewDisposeScope();
        var contiguous = tensor.detach().cpu().contiguous();
        return new JsonObject
        {
            ["dtype"] = contiguous.dtype.ToString(),
            ["shape"] = new JsonArray(contiguous.shape.Select(d => (JsonNode)d).ToArray()),
            ["data"] = Convert.ToBase64String(contiguous.bytes),
        };
    }

    /// <summary>A new CPU tensor from what <see cref="ToJson"/> saved; <paramref name="what"/> names it in the error when the entry is malformed.</summary>
    public static Tensor FromJson(JsonObject? saved, string what)
    {
        if (saved is null || !Enum.TryParse<ScalarType>((string?)saved["dtype"], out var dtype) || saved["shape"] is not JsonArray shape
            || (string?)saved["data"] is not { } data)
            throw new InvalidDataException($"The saved {what} is malformed: it needs dtype, shape and data.");
        var tensor = empty(shape.Select(d => (long)d!).ToArray(), dtype);
        tensor.bytes = Convert.FromBase64String(data);
        return tensor;
    }
}
