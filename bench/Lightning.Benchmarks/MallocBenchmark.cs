using System.Runtime.InteropServices;

namespace Lightning.Benchmarks;

/// <summary>
/// Page faults of a training step's allocation pattern (24 × 1 MiB buffers written, then freed) with glibc's default
/// malloc settings and after a Trainer set its own (GlibcMalloc): counted per thread, so other threads don't blur it.
/// The defaults come first because the settings cannot be taken back in one process. Linux only.
/// </summary>
internal static class MallocBenchmark
{
    public const string Name = "malloc";

    private const int BlockBytes = 1 << 20, Blocks = 24, PageBytes = 4096, Rounds = 4;

    public static void Run(string[] args)
    {
        if (!OperatingSystem.IsLinux())
        {
            Console.WriteLine("malloc: Linux only (/proc/thread-self/stat and glibc's mallopt)");
            return;
        }
        var defaults = FaultsPerRound();
        _ = new Trainer();
        var kept = FaultsPerRound();
        Console.WriteLine($"malloc: page faults per round of {Blocks} x 1 MiB buffers: glibc defaults {defaults}, after a Trainer {kept} " +
                          $"(the trainer aims for under {Blocks * BlockBytes / PageBytes / 4})");
    }

    private static long FaultsPerRound()
    {
        AllocateTouchAndFree(); // the first round may fault its pages in
        var before = MinorFaultsOfThisThread();
        for (int round = 0; round < Rounds; round++) AllocateTouchAndFree();
        return (MinorFaultsOfThisThread() - before) / Rounds;
    }

    /// <summary>A training step's pattern: many large buffers, written, then all freed (AllocHGlobal is malloc on Linux).</summary>
    private static void AllocateTouchAndFree()
    {
        var blocks = new IntPtr[Blocks];
        for (int i = 0; i < Blocks; i++)
        {
            blocks[i] = Marshal.AllocHGlobal(BlockBytes);
            for (int offset = 0; offset < BlockBytes; offset += PageBytes) Marshal.WriteByte(blocks[i], offset, 1);
        }
        foreach (var block in blocks) Marshal.FreeHGlobal(block);
    }

    private static long MinorFaultsOfThisThread()
    {
        var stat = File.ReadAllText("/proc/thread-self/stat");
        // Fields after the command name in parentheses: state, ppid, pgrp, session, tty, tpgid, flags, minflt.
        return long.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[7]);
    }
}
