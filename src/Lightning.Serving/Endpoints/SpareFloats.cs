namespace Lightning.Serving;

/// <summary>
/// One FP32 input buffer per thread, handed back after an inline run: a v2 request parses its data on the thread that
/// then runs the model inline (no await between them), so the next request on that thread parses into the same,
/// cache-warm array instead of a fresh one; ONNX Runtime reads it in place. Only a run that completed successfully
/// hands its buffer back: a queued request that was cancelled may still be read by the batcher.
/// </summary>
internal static class SpareFloats
{
    /// <summary>Larger buffers are not kept, so no thread holds more than 64 KiB for good.</summary>
    private const int MaxKept = 16 * 1024;

    [ThreadStatic]
    private static float[]? t_spare;

    /// <summary>An array of exactly <paramref name="count"/> elements, not cleared: the caller writes every element or drops it.</summary>
    public static float[] Take(long count)
    {
        var spare = t_spare;
        if (spare is not null && spare.Length == count)
        {
            t_spare = null;
            return spare;
        }
        return GC.AllocateUninitializedArray<float>(checked((int)count));
    }

    /// <summary>Keeps <paramref name="buffer"/> for the next <see cref="Take"/> on this thread; nothing may use it afterwards.</summary>
    public static void Give(float[] buffer)
    {
        if (buffer.Length <= MaxKept) t_spare = buffer;
    }
}
