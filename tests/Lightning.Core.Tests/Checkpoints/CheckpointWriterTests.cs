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
        // last.ckpt saved every quarter of the delay, and a top-k file deleted and replaced by a new name each time: while
        // the saves go on, last.ckpt must be written one delay after its first save (it keeps that save's turn), not
        // postponed by each new save. The writer's clock is a manual one, so "while" means no other time passes.
        using var root = new TempDirectory();
        var last = root.Combine("last.ckpt");
        var clock = new ManualClock();
        var writer = new CheckpointWriter(clock);
        var written = 0;
        string? previous = null;
        for (int save = 0; save <= 4; save++)
        {
            var topK = root.Combine($"step={save}.ckpt");
            writer.Write(topK, p => File.WriteAllText(p, "top-k"), () => { });
            if (previous is not null) writer.Delete(previous);
            previous = topK;
            writer.Write(last, p => { File.WriteAllText(p, "last"); Interlocked.Increment(ref written); }, () => { });
            if (save < 4) clock.Advance(CheckpointWriter.Delay / 4);
        }
        // The first save is now one delay old; the last one is new, and no wall-clock time matters.
        CheckpointWriter.Wake();

        Assert.True(Wait.Until(() => Volatile.Read(ref written) > 0), "last.ckpt was not written one delay after its first save");
        writer.Flush();
        Assert.Equal(["last.ckpt", "step=4.ckpt"], Directory.EnumerateFiles(root.Path).Select(Path.GetFileName).Order(StringComparer.Ordinal));
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
        var clock = new ManualClock();
        var writer = new CheckpointWriter(clock);

        Assert.True(writer.Exists(before));
        Assert.False(writer.Exists(mine));
        File.WriteAllText(outside, "written by someone else during the stage");
        writer.Write(mine, p => File.WriteAllText(p, "state"), () => { });
        writer.Delete(before);
        clock.Advance(CheckpointWriter.Delay);
        CheckpointWriter.Wake();
        // Idle: both jobs ran and were recorded, without a flush (which would list the folder again).
        Assert.True(Wait.Until(() => writer.Idle), "the queued jobs did not run once due");
        Assert.True(File.Exists(mine));
        Assert.False(File.Exists(before));

        Assert.Equal((true, false, false), (writer.Exists(mine), writer.Exists(before), writer.Exists(outside)));
        writer.Flush();
        Assert.True(writer.Exists(outside));
    }

    [Fact]
    public void AQueuedWrite_ReachesTheDiskWithoutAFlush()
    {
        using var root = new TempDirectory();
        var path = root.Combine("epoch=0.ckpt");
        var clock = new ManualClock();
        var writer = new CheckpointWriter(clock);

        writer.Write(path, p => File.WriteAllText(p, "state"), () => { });
        // Not due yet on the writer's clock, so nothing can have run: the job waits for later ones that make it pointless.
        Assert.False(writer.Idle);
        clock.Advance(CheckpointWriter.Delay);
        CheckpointWriter.Wake();

        Assert.True(Wait.Until(() => writer.Idle), "not written once due");
        Assert.Equal("state", File.ReadAllText(path));
        writer.Flush();
    }

    [Fact]
    public void MoreWritesThanMayWait_AreWrittenWithoutWaitingForTheDelay()
    {
        using var root = new TempDirectory();
        using var firstWritten = new ManualResetEventSlim();
        // The writer's clock never moves: only the number of held writes can start them.
        var writer = new CheckpointWriter(new ManualClock());

        for (int i = 0; i <= CheckpointWriter.MaxHeldWrites; i++)
            writer.Write(root.Combine($"epoch={i}.ckpt"), p => { File.WriteAllText(p, "state"); firstWritten.Set(); }, () => { });

        Assert.True(firstWritten.Wait(Wait.DefaultTimeout), $"{CheckpointWriter.MaxHeldWrites + 1} queued writes all waited for the delay");
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
