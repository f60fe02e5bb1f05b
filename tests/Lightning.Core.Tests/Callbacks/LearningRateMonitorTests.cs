using System.Globalization;
using Lightning.Callbacks;
using Lightning.Loggers;
using Lightning.Testing;
using static Lightning.Testing.TestTrainer;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Callbacks;

public class LearningRateMonitorTests
{
    private const int BatchesPerEpoch = 4;
    private const double InitialLr = 0.1;
    private const double Gamma = 0.5;

    private static TrainerOptions Options(TempDirectory root, CsvLogger? logger, int maxEpochs, params Callback[] callbacks) =>
        Quiet(root, callbacks) with { MaxEpochs = maxEpochs, Loggers = logger is null ? [] : [logger], LogEveryNSteps = 1 };

    private static IReadOnlyList<Tensor> Train => RandomBatches.Create(BatchesPerEpoch, seed: 1);

    /// <summary>The (step, value) rows of <paramref name="column"/> in the logger's metrics.csv.</summary>
    private static List<(long Step, double Value)> Column(CsvLogger logger, string column)
    {
        var lines = File.ReadAllLines(Path.Combine(logger.LogDir, CsvLogger.MetricsFileName));
        var header = lines[0].Split(',');
        int index = Array.IndexOf(header, column), step = Array.IndexOf(header, "step");
        Assert.True(index >= 0, $"metrics.csv has no column '{column}'; it has {lines[0]}");
        return lines.Skip(1).Select(line => line.Split(','))
            .Where(cells => cells[index].Length > 0)
            .Select(cells => (long.Parse(cells[step], CultureInfo.InvariantCulture), double.Parse(cells[index], CultureInfo.InvariantCulture)))
            .ToList();
    }

    [Fact]
    public void EpochScheduler_LogsTheStepLRScheduleAtEachEpochStart()
    {
        using var root = new TempDirectory();
        var csv = new CsvLogger(root.Path);
        const int epochs = 3;
        var monitor = new LearningRateMonitor();

        new Trainer(Options(root, csv, epochs, monitor)).Fit(new Scheduled(SchedulerInterval.Epoch), Train);

        var expected = Enumerable.Range(0, epochs).Select(e => ((long)e * BatchesPerEpoch, InitialLr * Math.Pow(Gamma, e))).ToList();
        var logged = Column(csv, "lr-SGD");
        Assert.Equal(expected.Select(e => e.Item1), logged.Select(l => l.Step));
        Assert.Equal(expected.Select(e => e.Item2), logged.Select(l => l.Value), new Tolerance(1e-12));
        Assert.Equal(expected.Select(e => e.Item2), monitor.Lrs["lr-SGD"], new Tolerance(1e-12));
    }

    [Fact]
    public void StepScheduler_LogsBeforeEveryLoggedStep()
    {
        using var root = new TempDirectory();
        var csv = new CsvLogger(root.Path);

        new Trainer(Options(root, csv, 1, new LearningRateMonitor())).Fit(new Scheduled(SchedulerInterval.Step), Train);

        var expected = Enumerable.Range(0, BatchesPerEpoch).Select(s => ((long)s, InitialLr * Math.Pow(Gamma, s))).ToList();
        var logged = Column(csv, "lr-SGD");
        Assert.Equal(expected.Select(e => e.Item1), logged.Select(l => l.Step));
        Assert.Equal(expected.Select(e => e.Item2), logged.Select(l => l.Value), new Tolerance(1e-12));
    }

    [Fact]
    public void StepScheduler_FollowsLogEveryNSteps()
    {
        using var root = new TempDirectory();
        var csv = new CsvLogger(root.Path);
        const int every = 2;

        new Trainer(Options(root, csv, 1, new LearningRateMonitor()) with { LogEveryNSteps = every }).Fit(new Scheduled(SchedulerInterval.Step), Train);

        Assert.Equal(Enumerable.Range(0, BatchesPerEpoch).Where(s => (s + 1) % every == 0).Select(s => (long)s), Column(csv, "lr-SGD").Select(l => l.Step));
    }

    [Fact]
    public void EpochInterval_WithAStepScheduler_LogsOncePerEpoch()
    {
        using var root = new TempDirectory();
        var csv = new CsvLogger(root.Path);
        const int epochs = 2;

        new Trainer(Options(root, csv, epochs, new LearningRateMonitor(loggingInterval: "epoch"))).Fit(new Scheduled(SchedulerInterval.Step), Train);

        var logged = Column(csv, "lr-SGD");
        Assert.Equal(Enumerable.Range(0, epochs).Select(e => (long)e * BatchesPerEpoch), logged.Select(l => l.Step));
        Assert.Equal(Enumerable.Range(0, epochs).Select(e => InitialLr * Math.Pow(Gamma, e * BatchesPerEpoch)), logged.Select(l => l.Value), new Tolerance(1e-12));
    }

    [Fact]
    public void SchedulerName_IsTheMetricName()
    {
        using var root = new TempDirectory();
        var csv = new CsvLogger(root.Path);

        new Trainer(Options(root, csv, 1, new LearningRateMonitor())).Fit(new Scheduled(SchedulerInterval.Epoch, schedulerName: "my_lr"), Train);

        Assert.Equal(InitialLr, Assert.Single(Column(csv, "my_lr")).Value, 12);
    }

    [Fact]
    public void SeveralOptimizersOfOneType_GetNumberedNamesAndMomentum()
    {
        using var root = new TempDirectory();
        var csv = new CsvLogger(root.Path);
        var monitor = new LearningRateMonitor(loggingInterval: "epoch", logMomentum: true);

        new Trainer(Options(root, csv, 1, monitor)).Fit(new TwoOptimizers(), Train);

        Assert.Equal(TwoOptimizers.FirstLr, Assert.Single(Column(csv, "lr-SGD")).Value);
        Assert.Equal(TwoOptimizers.FirstMomentum, Assert.Single(Column(csv, "lr-SGD-momentum")).Value);
        Assert.Equal(TwoOptimizers.SecondLr, Assert.Single(Column(csv, "lr-Adam")).Value);
        Assert.Equal(TwoOptimizers.SecondBeta1, Assert.Single(Column(csv, "lr-Adam-momentum")).Value);
        Assert.Equal(TwoOptimizers.ThirdLr, Assert.Single(Column(csv, "lr-SGD-1")).Value);
        Assert.Equal(0, Assert.Single(Column(csv, "lr-SGD-1-momentum")).Value);
    }

    [Fact]
    public void SchedulerOfTheSecondOptimizer_IsLoggedAtItsIntervalUnderThatOptimizersName()
    {
        using var root = new TempDirectory();
        var csv = new CsvLogger(root.Path);
        var monitor = new LearningRateMonitor();
        const int batches = 2;

        new Trainer(Options(root, csv, 1, monitor)).Fit(new SecondOptimizerScheduled(), RandomBatches.Create(batches));

        // The step scheduler drives Adam: logged before each step only. SGD has none: logged at the epoch start and every step.
        Assert.Equal(batches, monitor.Lrs["lr-Adam"].Count);
        Assert.Equal(batches + 1, monitor.Lrs["lr-SGD"].Count);
    }

    [Fact]
    public void WithoutALogger_FailsWhenTrainingStarts()
    {
        using var root = new TempDirectory();
        var error = Assert.Throws<InvalidOperationException>(() =>
            new Trainer(Options(root, null, 1, new LearningRateMonitor())).Fit(new Scheduled(SchedulerInterval.Epoch), Train));
        Assert.Contains("LearningRateMonitor needs a logger", error.Message);
    }

    [Fact]
    public void InvalidInterval_ListsTheLegalValues()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new LearningRateMonitor("batch"));
        Assert.Contains("loggingInterval = \"batch\"", error.Message);
        Assert.Contains("\"step\", \"epoch\" or null", error.Message);
    }

    private sealed class Tolerance(double epsilon) : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Abs(x - y) <= epsilon;
        public int GetHashCode(double obj) => 0;
    }

    private sealed class Scheduled(SchedulerInterval interval, string? schedulerName = null) : BoringModel(InitialLr)
    {
        public override OptimizerConfiguration ConfigureOptimizers()
        {
            var optimizer = optim.SGD(parameters(), InitialLr);
            return new OptimizerConfiguration(optimizer,
                new LrSchedulerConfig(optim.lr_scheduler.StepLR(optimizer, 1, Gamma), interval, Name: schedulerName));
        }
    }

    private sealed class SecondOptimizerScheduled : BoringModel
    {
        public SecondOptimizerScheduled() => AutomaticOptimization = false;

        public override Tensor? TrainingStep(Tensor batch, int batchIdx) => null;

        public override OptimizerConfiguration ConfigureOptimizers()
        {
            var sgd = optim.SGD(parameters(), InitialLr);
            var adam = optim.Adam(parameters(), InitialLr);
            return new OptimizerConfiguration([sgd, adam], [new LrSchedulerConfig(optim.lr_scheduler.StepLR(adam, 1, Gamma), SchedulerInterval.Step)]);
        }
    }

    /// <summary>Manual optimization with SGD (momentum), Adam and SGD again; the steps do nothing.</summary>
    private sealed class TwoOptimizers : BoringModel
    {
        public const double FirstLr = 0.1, FirstMomentum = 0.9, SecondLr = 0.01, SecondBeta1 = 0.8, ThirdLr = 0.3;

        public TwoOptimizers() => AutomaticOptimization = false;

        public override Tensor? TrainingStep(Tensor batch, int batchIdx) => null;

        public override OptimizerConfiguration ConfigureOptimizers() => new optim.Optimizer[]
        {
            optim.SGD(parameters(), FirstLr, momentum: FirstMomentum),
            optim.Adam(parameters(), SecondLr, beta1: SecondBeta1),
            optim.SGD(parameters(), ThirdLr),
        };
    }
}
