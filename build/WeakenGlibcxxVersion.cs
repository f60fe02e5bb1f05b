// Compiled by RoslynCodeTaskFactory (see Directory.Build.targets).
//
// TorchSharp 0.107's libLibTorchSharp.so lists GLIBCXX_3.4.32 as a required version for one symbol that
// it never relocates. Older libstdc++ (Debian 12 stops at 3.4.30) makes the dynamic loader refuse the
// whole library. Marking that version requirement VER_FLG_WEAK turns the hard failure into nothing: the
// loader then only checks versions that symbols actually bind to.
using System;
using System.IO;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;

public sealed class WeakenGlibcxxVersion : Task
{
    const uint ShtGnuVerneed = 0x6ffffffe;
    const ushort VerFlgWeak = 0x2;

    [Required] public ITaskItem[] Files { get; set; } = Array.Empty<ITaskItem>();
    [Required] public string Version { get; set; } = "";

    /// <summary>Patch even where this machine's libstdc++ has the version: for output that runs elsewhere (the GPU kit).</summary>
    public bool Always { get; set; }

    static readonly string[] LibStdCxxPaths =
    {
        "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6",
        "/usr/lib/aarch64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6", "/lib64/libstdc++.so.6",
        "/usr/lib/libstdc++.so.6",
    };

    public override bool Execute()
    {
        if (!RuntimeInformation.IsOSPlatform(OSPlatform.Linux) || (!Always && HostProvidesVersion())) return true;
        foreach (var item in Files)
        {
            var path = item.ItemSpec;
            if (!File.Exists(path)) continue;
            try
            {
                if (Weaken(path)) Log.LogMessage(MessageImportance.Normal, $"Marked {Version} weak in {path}");
            }
            catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
            {
                Log.LogError($"Could not mark {Version} weak in '{path}': {e.Message}");
            }
        }
        return !Log.HasLoggedErrors;
    }

    bool HostProvidesVersion()
    {
        var needle = Encoding.ASCII.GetBytes(Version + "\0");
        foreach (var lib in LibStdCxxPaths)
            if (File.Exists(lib) && Contains(File.ReadAllBytes(lib), needle)) return true;
        return false;
    }

    static bool Contains(byte[] haystack, byte[] needle)
    {
        for (int i = Array.IndexOf(haystack, needle[0]); i >= 0 && i <= haystack.Length - needle.Length;
             i = Array.IndexOf(haystack, needle[0], i + 1))
        {
            int j = 1;
            while (j < needle.Length && haystack[i + j] == needle[j]) j++;
            if (j == needle.Length) return true;
        }
        return false;
    }

    // Returns true when the file was changed; an already weak entry leaves the file (and its mtime) alone.
    bool Weaken(string path)
    {
        var elf = File.ReadAllBytes(path);
        if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != 'E' || elf[2] != 'L' || elf[3] != 'F' || elf[4] != 2 || elf[5] != 1)
            throw new InvalidDataException("not a little-endian 64-bit ELF file");

        long shoff = BitConverter.ToInt64(elf, 0x28);
        int shentsize = BitConverter.ToUInt16(elf, 0x3A), shnum = BitConverter.ToUInt16(elf, 0x3C);
        for (int i = 0; i < shnum; i++)
        {
            long sh = shoff + (long)i * shentsize;
            if (BitConverter.ToUInt32(elf, (int)sh + 4) != ShtGnuVerneed) continue;
            long verneed = BitConverter.ToInt64(elf, (int)sh + 24);
            int strtabIndex = BitConverter.ToInt32(elf, (int)sh + 40), count = BitConverter.ToInt32(elf, (int)sh + 44);
            long strtab = BitConverter.ToInt64(elf, (int)(shoff + (long)strtabIndex * shentsize) + 24);

            for (int n = 0, need = (int)verneed; n < count; n++)
            {
                int auxCount = BitConverter.ToUInt16(elf, need + 2);
                for (int a = 0, aux = need + BitConverter.ToInt32(elf, need + 8); a < auxCount; a++)
                {
                    if (ReadName(elf, (int)strtab + BitConverter.ToInt32(elf, aux + 8)) == Version)
                    {
                        ushort flags = BitConverter.ToUInt16(elf, aux + 4);
                        if ((flags & VerFlgWeak) != 0) return false;
                        WriteByte(path, aux + 4, (byte)(flags | VerFlgWeak)); // little-endian: the flag is in the low byte
                        return true;
                    }
                    aux += BitConverter.ToInt32(elf, aux + 12);
                }
                need += BitConverter.ToInt32(elf, need + 12);
            }
        }
        return false;
    }

    static string ReadName(byte[] elf, int offset)
    {
        int end = Array.IndexOf(elf, (byte)0, offset);
        return Encoding.ASCII.GetString(elf, offset, end - offset);
    }

    // One byte written in place keeps the file's mode and owner, and cannot leave a half-written copy.
    static void WriteByte(string path, long offset, byte value)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Write);
        file.Position = offset;
        file.WriteByte(value);
    }
}
