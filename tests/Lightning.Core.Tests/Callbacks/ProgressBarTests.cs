using Lightning.Callbacks;
using Lightning.Testing;

namespace Lightning.Core.Tests.Callbacks;

/// <summary><c>EnableProgressBar</c>: the trainer adds its progress bar only when asked (drawing it: TrainerFitTests).</summary>
public class ProgressBarTests
{
    [Fact]
    public void EnableProgressBar_False_AddsNoBarAndWritesNothing()
    {
        using var root = new TempDirectory();
        Trainer? trainer = null;
        var printed = ConsoleCapture.Out(() =>
        {
            trainer = new Trainer(TestTrainer.Quiet(root) with { EnableProgressBar = false, MaxEpochs = 1 });
            trainer.Fit(new BoringModel(), RandomBatches.Create(3));
        });

        Assert.DoesNotContain(trainer!.Callbacks, c => c is ProgressBar);
        Assert.Equal("", printed);
        // The same options with the flag on do add it (so the assertion above is about the flag).
        Assert.Contains(new Trainer(TestTrainer.Quiet(root) with { EnableProgressBar = true }).Callbacks, c => c is ProgressBar);
    }
}
