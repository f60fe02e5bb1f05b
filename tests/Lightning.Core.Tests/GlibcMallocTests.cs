using System.Collections;

namespace Lightning.Core.Tests;

/// <summary>The page-fault measurement of GlibcMalloc lives in bench/ ("malloc"); here only whose settings win.</summary>
public class GlibcMallocTests
{
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
}
