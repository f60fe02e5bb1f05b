using System.Diagnostics;
using System.Text.RegularExpressions;
using Lightning.Checkpoints;
using Lightning.IO;
using Lightning.Testing;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.IO;

public class DurableFileTests
{
    [Fact]
    public void AFullDiskDuringASave_KeepsThePreviousCheckpoint_RemovesTheTempFile_AndNamesPathAndFreeSpace()
    {
        using var root = new TempDirectory();
        var path = root.Combine("model.ckpt");
        var module = new Weights(fill: 1f);
        Checkpoint.Capture(module, [], epoch: 0, globalStep: 1, weightsOnly: true).SaveAndRelease(path);
        var saved = File.ReadAllBytes(path);

        using (no_grad()) module.w.fill_(2f);
        DurableFile.WrapStreamForTests.Value = file => new FullDiskStream(file, capacity: 1000);
        IOException error;
        try
        {
            error = Assert.Throws<IOException>(() => Checkpoint.Capture(module, [], 0, 2, weightsOnly: true).SaveAndRelease(path));
        }
        finally
        {
            DurableFile.WrapStreamForTests.Value = null;
        }

        Assert.Contains($"Writing '{path}' failed (", error.Message);
        Assert.Matches(@"\(\d+(\.\d+)? (bytes|KiB|MiB|GiB) free on ", error.Message);
        Assert.Contains("No space left on device", error.Message);
        Assert.Contains("The previous file, if any, is unchanged.", error.Message);
        Assert.Equal(saved, File.ReadAllBytes(path));
        Assert.Equal(new[] { path }, Directory.GetFiles(root.Path));
        var restored = new Weights(fill: 0f);
        var checkpoint = Checkpoint.Load(path);
        checkpoint.RestoreWeights(restored);
        Assert.Equal(1, checkpoint.GlobalStep);
        Assert.True(restored.w.eq(1f).all().item<bool>());
    }

    [Fact]
    public void StaleTemps_OfDeadWritersAndOfTheOldNaming_AreRemoved_LiveWritersAndOtherFilesAreKept()
    {
        using var root = new TempDirectory();
        using var alive = Process.Start(new ProcessStartInfo("sleep", "30") { UseShellExecute = false })!;
        try
        {
            var dead = Enumerable.Range(4_000_000, 1000).First(pid => !Directory.Exists($"/proc/{pid}"));
            string Temp(string pid) => root.Combine($".last.ckpt.{pid}{Guid.NewGuid():N}.tmp");
            var deadWriter = Temp($"{dead}.");
            var oldNaming = Temp("");
            var liveWriter = Temp($"{alive.Id}.");
            var ours = DurableFile.TempPathFor(root.Combine("last.ckpt"));
            var notOurs = root.Combine(".editor-swap.tmp");
            var checkpoint = root.Combine("last.ckpt");
            foreach (var file in new[] { deadWriter, oldNaming, liveWriter, ours, notOurs, checkpoint }) File.WriteAllText(file, "x");

            Assert.Equal(2, DurableFile.RemoveStaleTemps(root.Path));

            Assert.Equal(new[] { checkpoint, notOurs, ours, liveWriter }.Order(), Directory.GetFiles(root.Path).Order());
        }
        finally
        {
            alive.Kill();
        }
    }

    [RequiresFact(Component.Strace)]
    public void ACheckpointSave_FlushesTheFileBeforeTheRename_AndTheFolderAfterIt()
    {
        // strace (Debian: apt-get install strace; .ci/run installs it) shows the system calls of a real save.
        using var root = new TempDirectory();
        var log = root.Combine("strace.log");
        var start = new ProcessStartInfo("strace") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var argument in new[] { "-f", "-e", "trace=openat,fsync,fdatasync,rename,renameat,renameat2", "-o", log, "dotnet", WorkerProcess.DllPath, "save", root.Path })
            start.ArgumentList.Add(argument);
        using (var strace = Process.Start(start) ?? throw new InvalidOperationException("strace could not be started"))
        {
            var output = strace.StandardError.ReadToEnd() + strace.StandardOutput.ReadToEnd();
            Assert.True(strace.WaitForExit(TimeSpan.FromMinutes(2)) && strace.ExitCode == 0, $"strace or the worker failed:\n{output}");
        }

        var lines = File.ReadAllLines(log);
        var target = root.Combine("model.ckpt");
        int Find(Func<string, bool> match, int from = 0, string what = "") =>
            Enumerable.Range(from, lines.Length - from).FirstOrDefault(i => match(lines[i]), -1) is var i and >= 0 ? i
                : throw new Xunit.Sdk.XunitException($"no {what} in the trace after line {from}:\n{string.Join("\n", lines.Where(l => l.Contains("model.ckpt") || l.Contains("fsync")))}");
        var open = Find(l => l.Contains("openat(") && l.Contains(".model.ckpt.") && l.Contains(".tmp") && l.Contains("O_CREAT"), what: "open of the temporary file");
        var fd = Regex.Match(lines[open], @"= (\d+)$").Groups[1].Value;
        var fsyncFile = Find(l => Regex.IsMatch(l, $@"\bf(data)?sync\({fd}\)"), open, "fsync of the temporary file");
        var rename = Find(l => l.Contains("rename") && l.Contains($"\"{target}\""), fsyncFile, "rename onto the checkpoint");
        var openFolder = Find(l => l.Contains("openat(") && l.Contains($"\"{root.Path}\"") && l.Contains("O_DIRECTORY"), rename, "open of the folder");
        var folderFd = Regex.Match(lines[openFolder], @"= (\d+)$").Groups[1].Value;
        Find(l => Regex.IsMatch(l, $@"\bfsync\({folderFd}\)"), openFolder, "fsync of the folder");
    }

    private sealed class Weights : LightningModule<Tensor>
    {
        public readonly TorchSharp.Modules.Parameter w;

        public Weights(float fill) : base(nameof(Weights))
        {
            w = new TorchSharp.Modules.Parameter(full(1000, fill));
            RegisterComponents();
        }

        public override Tensor? TrainingStep(Tensor batch, int batchIdx) => throw new NotSupportedException();

        public override OptimizerConfiguration ConfigureOptimizers() => OptimizerConfiguration.None;
    }

    /// <summary>A file stream on a disk that fills up after <c>capacity</c> bytes, as a real one reports it (ENOSPC).</summary>
    private sealed class FullDiskStream(Stream inner, long capacity) : Stream
    {
        private long _written;

        public override bool CanRead => false;
        public override bool CanSeek => inner.CanSeek;
        public override bool CanWrite => true;
        public override long Length => inner.Length;
        public override long Position { get => inner.Position; set => inner.Position = value; }
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => inner.Seek(offset, origin);
        public override void SetLength(long value) => inner.SetLength(value);
        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if (_written + buffer.Length > capacity) throw new IOException("No space left on device", 28);
            _written += buffer.Length;
            inner.Write(buffer);
        }
    }
}
