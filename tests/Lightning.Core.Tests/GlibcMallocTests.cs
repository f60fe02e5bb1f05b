using System.Collections;
using System.Runtime.InteropServices;

namespace Lightning.Core.Tests;

public class GlibcMallocTests
{
    private const int BlockBytes = 1 << 20;
    private const int Blocks = 24;
    private const int PageBytes = 4096;

    [Fact]
    public void OnceATrainerExists_MemoryFreedInOneStepIsReusedInTheNext_WithoutFaultingItInAgain()
    {
        _ = new Trainer();

        AllocateTouchAndFree(); // the first round may fault its pages in
        var before = MinorFaultsOfThisThread();
        for (int round = 0; round < 4; round++) AllocateTouchAndFree();
        var faults = MinorFaultsOfThisThread() - before;

        // With glibc's defaults each round maps, trims or unmaps its 24 MiB anew: 3,800 to 6,100 faults a round.
        Assert.True(faults < Blocks * BlockBytes / PageBytes / 4, $"4 rounds of 24 x 1 MiB buffers faulted {faults} pages in again.");
    }

    [Theory]
    [InlineData("MALLOC_ARENA_MAX", "2", true)]
    [InlineData("MALLOC_TRIM_THRESHOLD_", "131072", true)]
    [InlineData("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=65536", true)]
    [InlineData("GLIBC_TUNABLES", "glibc.cpu.hwcaps=-AVX512F", false)]
    [InlineData("PATH", "/usr/bin", false)]
    public void AUsersOwnMallocSettingsWin(string name, string value, bool userChose)
    {
        Assert.Equal(userChose, GlibcMalloc.UserChoseSettings(new Hashtable { [name] = value, ["HOME"] = "/root" }));
    }

    /// <summary>A training step's pattern: many large buffers, written, then all freed.</summary>
    private static void AllocateTouchAndFree()
    {
        // AllocHGlobal is malloc on Linux, the allocator libtorch uses.
        var blocks = new IntPtr[Blocks];
        for (int i = 0; i < Blocks; i++)
        {
            blocks[i] = Marshal.AllocHGlobal(BlockBytes);
            for (int offset = 0; offset < BlockBytes; offset += PageBytes) Marshal.WriteByte(blocks[i], offset, 1);
        }
        foreach (var block in blocks) Marshal.FreeHGlobal(block);
    }

    /// <summary>Page faults are counted per thread, so other threads' allocations don't blur the count.</summary>
    private static long MinorFaultsOfThisThread()
    {
        var stat = File.ReadAllText("/proc/thread-self/stat");
        // Fields after the command name in parentheses: state, ppid, pgrp, session, tty, tpgid, flags, minflt.
        return long.Parse(stat[(stat.LastIndexOf(')') + 2)..].Split(' ')[7]);
    }
}
