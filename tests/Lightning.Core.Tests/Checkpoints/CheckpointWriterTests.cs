using Lightning.Checkpoints;
using Lightning.Testing;

namespace Lightning.Core.Tests.Checkpoints;

public class CheckpointWriterTests
{
    [Fact]
    public void AWriteDeletedBeforeItsTurn_IsDroppedAndGivesItsStateBack_AndTheDeletionStillRuns()
    {
        using var root = new TempDirectory();
        var path = root.Combine("epoch=0.ckpt");
        File.WriteAllText(path, "a file of the same name from before");
        int written = 0, discarded = 0;
        var writer = new CheckpointWriter();

        writer.Write(path, p => { written++; File.WriteAllText(p, "new"); }, () => discarded++);
        writer.Delete(path);
        writer.Flush();

        Assert.Equal((0, 1), (written, discarded));
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void ASecondWriteOfTheSameFile_SupersedesTheFirst()
    {
        using var root = new TempDirectory();
        var path = root.Combine("last.ckpt");
        var discarded = new List<string>();
        var writer = new CheckpointWriter();

        writer.Write(path, p => File.WriteAllText(p, "first"), () => discarded.Add("first"));
        writer.Write(path, p => File.WriteAllText(p, "second"), () => discarded.Add("second"));
        writer.Flush();

        Assert.Equal("second", File.ReadAllText(path));
        Assert.Equal(["first"], discarded);
    }

    [Fact]
    public void AFileSavedMoreOftenThanTheDelay_StillReachesDisk_AsDoAFileRotatedLikeTopK()
    {
        // last.ckpt saved every 50 ms, and a top-k file deleted and replaced by a new name each time: while the saves go
        // on, last.ckpt must be written (it keeps its first save's turn), not postponed by each new save.
        using var root = new TempDirectory();
        var last = root.Combine("last.ckpt");
        var writer = new CheckpointWriter();
        var written = 0;
        string? previous = null;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int save = 0; Volatile.Read(ref written) == 0 && clock.Elapsed < CheckpointWriter.Delay * 10; save++)
        {
            var topK = root.Combine($"step={save}.ckpt");
            writer.Write(topK, p => File.WriteAllText(p, "top-k"), () => { });
            if (previous is not null) writer.Delete(previous);
            previous = topK;
            writer.Write(last, p => { File.WriteAllText(p, "last"); Interlocked.Increment(ref written); }, () => { });
            Thread.Sleep(50);
        }
        var elapsed = clock.Elapsed;
        writer.Flush();

        Assert.True(written > 0 && elapsed < CheckpointWriter.Delay * 10,
            $"last.ckpt was not written during {elapsed.TotalSeconds:0.0} s of saves every 50 ms");
    }

    [Fact]
    public void Exists_FollowsTheLastQueuedJobOnTheFile()
    {
        using var root = new TempDirectory();
        var queued = root.Combine("queued.ckpt");
        var onDisk = root.Combine("on-disk.ckpt");
        File.WriteAllText(onDisk, "old");
        var writer = new CheckpointWriter();

        writer.Write(queued, p => File.WriteAllText(p, "new"), () => { });
        Assert.True(writer.Exists(queued));
        writer.Delete(queued);
        Assert.False(writer.Exists(queued));
        writer.Delete(onDisk);
        Assert.False(writer.Exists(onDisk));
        writer.Flush();

        Assert.Empty(Directory.EnumerateFiles(root.Path));
    }

    [Fact]
    public void Exists_AnswersFromOneListingOfTheFolder_KeptInStepWithItsOwnJobs_UntilAFlush()
    {
        using var root = new TempDirectory();
        var before = root.Combine("before.ckpt");
        var mine = root.Combine("epoch=0.ckpt");
        var outside = root.Combine("outside.ckpt");
        File.WriteAllText(before, "old");
        var writer = new CheckpointWriter();

        Assert.True(writer.Exists(before));
        Assert.False(writer.Exists(mine));
        File.WriteAllText(outside, "written by someone else during the stage");
        writer.Write(mine, p => File.WriteAllText(p, "state"), () => { });
        writer.Delete(before);
        var deadline = DateTime.UtcNow + CheckpointWriter.Delay + TimeSpan.FromSeconds(30);
        while ((!File.Exists(mine) || File.Exists(before)) && DateTime.UtcNow < deadline) Thread.Sleep(20);
        Thread.Sleep(100); // the writer records a job just after it ran

        Assert.Equal((true, false, false), (writer.Exists(mine), writer.Exists(before), writer.Exists(outside)));
        writer.Flush();
        Assert.True(writer.Exists(outside));
    }

    [Fact]
    public void AQueuedWrite_ReachesTheDiskWithoutAFlush()
    {
        using var root = new TempDirectory();
        var path = root.Combine("epoch=0.ckpt");
        var writer = new CheckpointWriter();

        writer.Write(path, p => File.WriteAllText(p, "state"), () => { });
        var deadline = DateTime.UtcNow + CheckpointWriter.Delay + TimeSpan.FromSeconds(30);
        while (!File.Exists(path) && DateTime.UtcNow < deadline) Thread.Sleep(20);

        Assert.True(File.Exists(path), $"not written {CheckpointWriter.Delay + TimeSpan.FromSeconds(30)} after it was queued");
        writer.Flush();
    }

    [Fact]
    public void MoreWritesThanMayWait_AreWrittenWithoutWaitingForTheDelay()
    {
        using var root = new TempDirectory();
        using var firstWritten = new ManualResetEventSlim();
        var writer = new CheckpointWriter();

        for (int i = 0; i <= CheckpointWriter.MaxHeldWrites; i++)
            writer.Write(root.Combine($"epoch={i}.ckpt"), p => { File.WriteAllText(p, "state"); firstWritten.Set(); }, () => { });

        Assert.True(firstWritten.Wait(CheckpointWriter.Delay * 0.9), $"{CheckpointWriter.MaxHeldWrites + 1} queued writes all waited for the delay");
        writer.Flush();
        Assert.Equal(CheckpointWriter.MaxHeldWrites + 1, Directory.EnumerateFiles(root.Path).Count());
    }

    [Fact]
    public void AnotherTrainersFlush_DoesNotHurryThisOnesWrites()
    {
        using var root = new TempDirectory();
        int written = 0;
        var mine = new CheckpointWriter();
        var other = new CheckpointWriter();

        mine.Write(root.Combine("mine.ckpt"), p => { written++; File.WriteAllText(p, "state"); }, () => { });
        other.Write(root.Combine("other.ckpt"), p => File.WriteAllText(p, "state"), () => { });
        other.Flush();
        mine.Delete(root.Combine("mine.ckpt"));
        mine.Flush();

        Assert.Equal(0, written);
        Assert.Equal(["other.ckpt"], Directory.EnumerateFiles(root.Path).Select(Path.GetFileName));
    }
}
