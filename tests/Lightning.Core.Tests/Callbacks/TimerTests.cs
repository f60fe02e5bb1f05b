using System.Text.Json.Nodes;
using Lightning.Testing;
using Timer = Lightning.Callbacks.Timer;

namespace Lightning.Core.Tests.Callbacks;

/// <summary>The <c>Timer</c> callback: its duration stops the fit, and its elapsed time survives a checkpoint.</summary>
public class TimerTests
{
    [Fact]
    public void Timer_WhoseSavedStateHasUsedTheWholeDuration_StopsAfterTheFirstBatch()
    {
        using var root = new TempDirectory();
        var timer = new Timer(TimeSpan.FromHours(1));
        timer.LoadState(new JsonObject { ["elapsed_seconds"] = 3600.0 });
        var trainer = new Trainer(TestTrainer.Quiet(root, timer) with { MaxEpochs = 5 });

        trainer.Fit(new BoringModel(), RandomBatches.Create(8));

        Assert.Equal(1, trainer.GlobalStep);   // 40 without the timer
        Assert.Equal(TimeSpan.Zero, timer.Remaining);
    }

    [Fact]
    public void Timer_WithTimeLeft_LetsTheFitFinish_AndCountsTheTimeBeforeTheResume()
    {
        using var root = new TempDirectory();
        var timer = new Timer(TimeSpan.FromHours(1));
        timer.LoadState(new JsonObject { ["elapsed_seconds"] = 1800.0 });
        var trainer = new Trainer(TestTrainer.Quiet(root, timer) with { MaxEpochs = 2 });

        trainer.Fit(new BoringModel(), RandomBatches.Create(4));

        Assert.Equal(8, trainer.GlobalStep);
        Assert.InRange(timer.Elapsed, TimeSpan.FromSeconds(1800), TimeSpan.FromSeconds(1800 + 600));
        Assert.Equal(timer.Duration - timer.Elapsed, timer.Remaining);
        Assert.Equal(timer.Elapsed.TotalSeconds, (double)timer.SaveState()["elapsed_seconds"]!);
    }

    [Fact]
    public void Timer_ElapsedTime_RoundTripsThroughACheckpoint()
    {
        using var root = new TempDirectory();
        var path = root.Combine("timer.ckpt");
        var first = new Timer(TimeSpan.FromHours(1));
        first.LoadState(new JsonObject { ["elapsed_seconds"] = 1234.5 });
        var trainer = new Trainer(TestTrainer.Quiet(root, first) with { MaxEpochs = 1 });
        trainer.Fit(new BoringModel(), RandomBatches.Create(2));
        trainer.SaveCheckpoint(path);
        var saved = first.Elapsed;

        var second = new Timer(TimeSpan.FromHours(1));
        var resumed = new Trainer(TestTrainer.Quiet(root, second) with { MaxEpochs = 2 });
        resumed.Fit(new BoringModel(), RandomBatches.Create(2), ckptPath: path);

        Assert.True(saved > TimeSpan.FromSeconds(1234.5), $"the first run's elapsed time {saved} lost its loaded 1234.5 s");
        Assert.True(second.Elapsed >= saved, $"the resumed timer shows {second.Elapsed}, less than the {saved} saved in the checkpoint");
        Assert.Equal(4, resumed.GlobalStep);
    }
}
