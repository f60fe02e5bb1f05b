using System.Globalization;
using System.Runtime.InteropServices;

namespace Lightning.IO;

/// <summary>
/// Replaces a file so that a crash or power loss at any moment leaves either the old file or the complete new one: the
/// data goes to a temporary file in the same folder, is flushed to disk, renamed over the target, and the folder itself
/// is flushed so the rename is on disk too. Without the two flushes a power loss can persist the rename before the
/// data, leaving an empty file where the good one was.
/// </summary>
internal static class DurableFile
{
    private const string TempSuffix = ".tmp";

    /// <summary>Tests replace the file stream of the saves they make (for example with one that reports a full disk after some bytes).</summary>
    internal static readonly AsyncLocal<Func<FileStream, Stream>?> WrapStreamForTests = new();

    /// <summary>Writes <paramref name="path"/> with <paramref name="write"/>, durably; on failure the previous file is kept and no temporary file remains.</summary>
    public static void Write(string path, Action<Stream> write)
    {
        var fullPath = Path.GetFullPath(path);
        var directory = Path.GetDirectoryName(fullPath)!;
        var temp = TempPathFor(fullPath);
        try
        {
            FileStream file;
            try
            {
                file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 4096);
            }
            catch (DirectoryNotFoundException)
            {
                // Created only when missing: most saves go to a folder that exists, and this saves them a system call.
                Directory.CreateDirectory(directory);
                file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, bufferSize: 4096);
            }
            using (file)
            {
                var stream = WrapStreamForTests.Value?.Invoke(file) ?? file;
                write(stream);
                stream.Flush();
                file.Flush(flushToDisk: true);
            }
            File.Move(temp, fullPath, overwrite: true);
        }
        catch (Exception e)
        {
            TryDelete(temp);
            if (e is IOException io) throw WithFreeSpace(fullPath, io);
            throw;
        }
        FlushFolder(directory);
    }

    /// <summary>
    /// Moves a complete temporary file that the caller wrote (and closed) over <paramref name="path"/>, flushing both to
    /// disk first; for writers that need the temporary file's name themselves.
    /// </summary>
    public static void Commit(string temp, string path)
    {
        using (var file = new FileStream(temp, FileMode.Open, FileAccess.ReadWrite, FileShare.None)) file.Flush(flushToDisk: true);
        File.Move(temp, path, overwrite: true);
        FlushFolder(Path.GetDirectoryName(Path.GetFullPath(path))!);
    }

    /// <summary>
    /// A temporary name next to <paramref name="path"/>: hidden, with this process's id so that a later run can tell a
    /// file left by a killed writer from one that a live process is still writing.
    /// </summary>
    public static string TempPathFor(string path)
    {
        var fullPath = Path.GetFullPath(path);
        return Path.Combine(Path.GetDirectoryName(fullPath)!,
            $".{Path.GetFileName(fullPath)}.{Environment.ProcessId.ToString(CultureInfo.InvariantCulture)}.{Guid.NewGuid():N}{TempSuffix}");
    }

    /// <summary>Removes the temporary files in <paramref name="folder"/> whose writing process is gone (killed mid-write); returns how many.</summary>
    public static int RemoveStaleTemps(string folder)
    {
        if (!Directory.Exists(folder)) return 0;
        var removed = 0;
        foreach (var file in Directory.EnumerateFiles(folder, "." + "*" + TempSuffix))
            if (IsStale(Path.GetFileName(file)) && TryDelete(file)) removed++;
        return removed;
    }

    /// <summary>
    /// ".name.pid.guid.tmp" is stale when process pid is gone; ".name.guid.tmp" (written before ids were added) always is.
    /// Names without our 32-digit guid are not ours and are left alone.
    /// </summary>
    private static bool IsStale(string name)
    {
        var parts = name[..^TempSuffix.Length].Split('.');
        if (parts.Length < 3 || parts[^1].Length != 32 || !parts[^1].All(Uri.IsHexDigit)) return false;
        if (!int.TryParse(parts[^2], NumberStyles.None, CultureInfo.InvariantCulture, out var pid)) return true;
        return pid != Environment.ProcessId && !IsAlive(pid);
    }

    private static bool IsAlive(int pid)
    {
        if (pid <= 0) return true;
        if (OperatingSystem.IsLinux()) return Directory.Exists($"/proc/{pid.ToString(CultureInfo.InvariantCulture)}");
        try
        {
            using var process = System.Diagnostics.Process.GetProcessById(pid);
            return !process.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private static bool TryDelete(string path)
    {
        try
        {
            File.Delete(path);
            return true;
        }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
    }

    private static IOException WithFreeSpace(string path, IOException error)
    {
        string free;
        try
        {
            var drive = new DriveInfo(Path.GetDirectoryName(path)!);
            free = $"{FormatBytes(drive.AvailableFreeSpace)} free on {drive.Name}";
        }
        catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException)
        {
            free = "free space unknown";
        }
        return new IOException(
            $"Writing '{path}' failed ({free}): {error.Message} The previous file, if any, is unchanged.", error) { HResult = error.HResult };
    }

    internal static string FormatBytes(long bytes) => bytes switch
    {
        >= 1L << 30 => $"{bytes / (double)(1L << 30):0.##} GiB",
        >= 1L << 20 => $"{bytes / (double)(1L << 20):0.##} MiB",
        >= 1L << 10 => $"{bytes / 1024.0:0.##} KiB",
        _ => $"{bytes} bytes",
    };

    /// <summary>Flushes a folder's entries (the rename) to disk; a no-op where folders cannot be opened (Windows).</summary>
    private static void FlushFolder(string directory)
    {
        if (OperatingSystem.IsWindows()) return;
        var fd = open(directory, OpenReadOnly | (OperatingSystem.IsLinux() ? OpenDirectoryLinux : 0));
        if (fd < 0) return;
        try { fsync(fd); }
        finally { close(fd); }
    }

    private const int OpenReadOnly = 0;
    private const int OpenDirectoryLinux = 0x10000;

    [DllImport("libc", SetLastError = true)] private static extern int open([MarshalAs(UnmanagedType.LPUTF8Str)] string path, int flags);
    [DllImport("libc", SetLastError = true)] private static extern int fsync(int fd);
    [DllImport("libc")] private static extern int close(int fd);
}
