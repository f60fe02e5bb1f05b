using System.Diagnostics;
using System.Globalization;
using Lightning.Strategies;
using Lightning.Testing;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Strategies;

/// <summary>
/// Strategy "ddp": the multi-process tests start the worker project under <c>mpiexec -n 2</c> (MPICH; <c>.ci/run</c>
/// installs it) and compare what the ranks wrote with single-process runs made here.
/// </summary>
public class DdpTests(DdpTests.TrainRun run) : IClassFixture<DdpTests.TrainRun>
{
    private static TrainerOptions Quiet(string root) => new()
    {
        DefaultRootDir = root, Accelerator = "cpu", EnableProgressBar = false, EnableModelSummary = false, EnableCheckpointing = false,
        Loggers = [], NumSanityValSteps = 0,
    };

    [RequiresFact(Component.Mpich)]
    public void TwoRanksOnBatchesOfB_MatchOneProcessOnBatchesOf2B()
    {
        using var root = new TempDirectory();
        using var rows = new IndexedRows(160, seed: 5);
        var single = Fit(Quiet(root.Path) with { MaxSteps = 20 }, rows.Loader(8, shuffle: false));

        Assert.Equal("20", run.Read("fp32-steps", 0));
        Regressor.AssertClose(single, run.Weights("fp32", 0), 1e-5);
        Regressor.AssertClose(run.Weights("fp32", 0), run.Weights("fp32", 1), 0);
    }

    [RequiresFact(Component.Mpich)]
    public void TwoRanksWithGradientAccumulation_MatchOneProcessOnBatchesOf2B()
    {
        using var root = new TempDirectory();
        var batches = Pairs(RandomBatches.Create(80, batchSize: 4, features: 16, seed: 5));
        var single = Fit(Quiet(root.Path) with { MaxEpochs = 1, AccumulateGradBatches = 2 }, batches);

        Regressor.AssertClose(single, run.Weights("accumulate", 0), 1e-5);
        Regressor.AssertClose(run.Weights("accumulate", 0), run.Weights("accumulate", 1), 0);
    }

    [RequiresFact(Component.Mpich)]
    public void TwoRanksInBf16Mixed_StayWithinBf16RoundingOfOneProcess()
    {
        using var root = new TempDirectory();
        var batches = Pairs(RandomBatches.Create(80, batchSize: 4, features: 16, seed: 5).Take(40).ToList());
        var single = Fit(Quiet(root.Path) with { MaxEpochs = 1, Precision = "bf16-mixed" }, batches);

        // bfloat16 keeps 8 bits of mantissa and its rounding depends on how rows are batched (as with "dp"): 1e-5 is out of reach.
        Regressor.AssertClose(single, run.Weights("bf16", 0), 5e-3);
        Regressor.AssertClose(run.Weights("bf16", 0), run.Weights("bf16", 1), 0);
    }

    [RequiresFact(Component.Mpich)]
    public void InjectedSampler_GivesDisjointShardsThatCoverEachEpoch_ReshuffledPerEpoch()
    {
        var seen = new[] { run.Rows("sampler", 0), run.Rows("sampler", 1) };
        // 21 rows padded to 22: 11 per rank and epoch, one row repeated to even the shards out.
        Assert.All(seen, rank => Assert.Equal(22, rank.Length));
        var epochs = Enumerable.Range(0, 2).Select(e => seen.SelectMany(rank => rank.Skip(11 * e).Take(11)).ToArray()).ToArray();
        foreach (var epoch in epochs)
        {
            Assert.Equal(Enumerable.Range(0, 21).Select(i => (long)i), epoch.Distinct().Order());
            Assert.Equal(21, epoch.Distinct().Count());
        }
        Assert.NotEqual(seen[0].Take(11), seen[0].Skip(11));
    }

    [RequiresFact(Component.Mpich)]
    public void EvaluationMetricsWithSyncDist_EqualSingleProcess()
    {
        using var root = new TempDirectory();
        using var rows = new IndexedRows(21, seed: 6);
        var model = new Regressor();
        model.LoadWeightsText(run.Read("eval-weights", 0));
        var single = new Trainer(Quiet(root.Path)).Validate(model, rows.Loader(2, shuffle: false));

        foreach (var rank in new[] { 0, 1 })
        {
            var metrics = run.Read("eval", rank).Split('\n').Select(l => l.Split(' '))
                .ToDictionary(p => p[0], p => double.Parse(p[1], CultureInfo.InvariantCulture));
            // Each batch's loss is a float32 mean over different rows on each side: equal to float32 rounding.
            Assert.Equal(single["val_loss"], metrics["val_loss"], 1e-6 * Math.Abs(single["val_loss"]));
            Assert.Equal(single["val_max"], metrics["val_max"]);
        }
    }

    [RequiresFact(Component.Mpich)]
    public void Checkpoint_IsWrittenOnceByRankZero_AndLogsOnce()
    {
        var folder = Path.Combine(run.Folder, "ckpt");
        Assert.Single(Directory.GetFiles(folder, "*.ckpt", SearchOption.AllDirectories));
        Assert.Equal(["version_0"], Directory.GetDirectories(Path.Combine(folder, "lightning_logs")).Select(Path.GetFileName));
        Assert.Single(Directory.GetFiles(folder, "metrics.csv", SearchOption.AllDirectories));
        Assert.Equal(run.Read("checkpoint", 0), run.Read("checkpoint", 1));
    }

    [RequiresFact(Component.Mpich)]
    public void ResumedDdpRun_EqualsTheUninterruptedRun()
    {
        Regressor.AssertClose(run.Weights("straight", 0), run.Weights("resumed", 0), 0);
        Regressor.AssertClose(run.Weights("resumed", 0), run.Weights("resumed", 1), 0);
    }

    [RequiresFact(Component.Mpich)]
    public void DdpCheckpoint_ResumesInOneProcess()
    {
        using var root = new TempDirectory();
        using var rows = new IndexedRows(48, seed: 7);
        var trainer = new Trainer(Quiet(root.Path) with { MaxEpochs = 2 });
        trainer.Fit(new Regressor(), rows.Loader(4, shuffle: true), ckptPath: run.Read("checkpoint", 0));

        // Epoch 0 ran on 2 ranks (48 rows / 2 / 4 = 6 steps); epoch 1 on one process takes all 12 batches.
        Assert.Equal(6 + 12, trainer.GlobalStep);
        Assert.Equal(2, trainer.CurrentEpoch);
    }

    [RequiresFact(Component.Mpich)]
    public void StopAskedForByOneRank_StopsEveryRankAtTheSameStep()
    {
        Assert.Equal("3 1", run.Read("stopped", 0)); // 3 steps; the stopped epoch counts as done
        Assert.Equal("3 1", run.Read("stopped", 1));
    }

    [RequiresFact(Component.Mpich)]
    public void DataModule_PreparesOnLocalRankZeroOnly_AndSetsUpOnEveryRank()
    {
        Assert.Equal("1 1", run.Read("prepared", 0));
        Assert.Equal("0 1", run.Read("prepared", 1));
    }

    [RequiresFact(Component.Mpich)]
    public void KilledRank_MakesTheOthersExitNonZeroInBoundedTime()
    {
        using var folder = new TempDirectory();
        using var mpiexec = Mpiexec.Start("kill", folder.Path);
        var pidFile = folder.Combine("rank1.pid");
        Wait.Until(() => File.Exists(pidFile) || mpiexec.Process.HasExited, TimeSpan.FromMinutes(2));
        Assert.True(File.Exists(pidFile), $"rank 1 never started training:\n{mpiexec.Output()}");
        using (var rank1 = Process.GetProcessById(int.Parse(File.ReadAllText(pidFile), CultureInfo.InvariantCulture))) rank1.Kill();

        var killed = Stopwatch.StartNew();
        Assert.True(mpiexec.Process.WaitForExit(TimeSpan.FromSeconds(60)), "the surviving rank did not stop within 60 s");
        Assert.NotEqual(0, mpiexec.Process.ExitCode);
        Assert.True(killed.Elapsed < TimeSpan.FromSeconds(60));
    }

    [RequiresFact(Component.Mpich)]
    public void FourGpus_AutoRunsDdp_OneRankPerGpu()
    {
        // Trainer(devices=4, accelerator="gpu") with four CUDA devices injected: started as one process, it relaunches
        // itself under mpiexec -n 4 and rank r drives cuda:r.
        using var folder = new TempDirectory();
        using var worker = WorkerProcess.Start("gpus", folder.Path);
        Assert.True(worker.Process.WaitForExit(TimeSpan.FromMinutes(2)), "the four ranks did not finish within 2 minutes");
        Assert.True(worker.Process.ExitCode == 0, $"exit code {worker.Process.ExitCode}:\n{worker.Output()}");
        for (int rank = 0; rank < 4; rank++)
            Assert.Equal($"cuda DdpStrategy 4 {rank} {rank} cuda:{rank} 32-true", File.ReadAllText(folder.Combine($"gpus.rank{rank}.txt")));
    }

    [TwoHostsFact]
    public void TwoNodes_AcrossTwoHostsOverTcp_ReachTheWeightsOfAOneHostRun()
    {
        // NumNodes = 2, Devices = 1, under "ddp" and then "ddp_sharded": two network namespaces with their own hostnames,
        // joined by a veth pair, the ranks held to TCP (scripts/two-hosts.sh); then the same scenario under mpiexec -n 2
        // on this host.
        using var twoHosts = new TempDirectory();
        var script = Path.Combine(RepositoryRoot(), "scripts", "two-hosts.sh");
        var start = new ProcessStartInfo(script) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in new[] { "dotnet", WorkerProcess.DllPath, "nodes", twoHosts.Path }) start.ArgumentList.Add(argument);
        using (var run = Process.Start(start)!)
        {
            var output = run.StandardOutput.ReadToEndAsync();
            var errors = run.StandardError.ReadToEndAsync();
            Assert.True(run.WaitForExit(TimeSpan.FromMinutes(3)), "the two-host run did not finish within 3 minutes");
            run.WaitForExit();
            Assert.True(run.ExitCode == 0, $"two-hosts.sh failed ({run.ExitCode}):\n{output.Result}\n{errors.Result}");
        }
        using var oneHost = new TempDirectory();
        using (var run = Mpiexec.Start("nodes", oneHost.Path))
            Assert.True(run.Process.WaitForExit(TimeSpan.FromMinutes(3)) && run.Process.ExitCode == 0, $"the one-host run failed:\n{run.Output()}");

        string Read(TempDirectory folder, string name, int rank) => File.ReadAllText(folder.Combine($"{name}.rank{rank}.txt"));
        Assert.Equal(("node-lnA", "node-lnB"), (Read(twoHosts, "host", 0), Read(twoHosts, "host", 1)));
        foreach (var run in new[] { "nodes", "nodes-sharded" })
        {
            for (int rank = 0; rank < 2; rank++) Assert.Equal(Read(oneHost, run, rank), Read(twoHosts, run, rank));
            // Both strategies keep the ranks' weights identical.
            Assert.Equal(Read(twoHosts, run, 0), Read(twoHosts, run, 1));
        }
    }

    private static string RepositoryRoot()
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
            if (File.Exists(Path.Combine(folder.FullName, "Lightning.sln"))) return folder.FullName;
        throw new DirectoryNotFoundException($"No Lightning.sln above {AppContext.BaseDirectory}.");
    }

    [RequiresFact(Component.Mpich)]
    public void ExitedRank_IsNamedByTheSurvivor_WhichExitsNonZeroWithinTheTimeoutPlus10Seconds()
    {
        // Rank 1 returns from its process at step 3 (exit code 0, no error of its own); rank 0 waits in the next
        // gradient Allreduce. The worker's DistributedTimeout is 5 s.
        var output = RunUntilRankOneExits("exit");
        Assert.Contains("DDP AllReduce did not complete within 00:00:05", output);
        Assert.Contains("on rank 0: rank 1 did not arrive", output);
    }

    /// <summary>
    /// Runs a worker scenario in which rank 1 leaves at step 3 (DistributedTimeout 5 s) and checks that the job then ends
    /// non-zero within the timeout plus 10 s; returns the job's output.
    /// </summary>
    internal static string RunUntilRankOneExits(string scenario)
    {
        using var folder = new TempDirectory();
        using var mpiexec = Mpiexec.Start(scenario, folder.Path);
        Assert.True(mpiexec.Process.WaitForExit(TimeSpan.FromMinutes(2)), $"the job did not stop within 2 minutes:\n{mpiexec.Output()}");
        var output = mpiexec.Output();
        var exitFile = folder.Combine("rank1.exit");
        Assert.True(File.Exists(exitFile), $"rank 1 never reached step 3:\n{output}");
        var rank1Left = new DateTime(long.Parse(File.ReadAllText(exitFile), CultureInfo.InvariantCulture), DateTimeKind.Utc);
        var after = mpiexec.Process.ExitTime.ToUniversalTime() - rank1Left;
        Console.WriteLine($"the job ended {after.TotalSeconds:0.0} s after rank 1 left (DistributedTimeout 5 s)");
        Assert.True(after <= TimeSpan.FromSeconds(5 + 10), $"the job ended {after.TotalSeconds:0.0} s after rank 1 left");
        Assert.NotEqual(0, mpiexec.Process.ExitCode);
        return output;
    }

    [RequiresFact(Component.Mpich)]
    public void HungRank_MakesTheOthersFailOnTheCollectiveTimeout()
    {
        using var folder = new TempDirectory();
        using var mpiexec = Mpiexec.Start("hang", folder.Path);
        Assert.True(mpiexec.Process.WaitForExit(TimeSpan.FromMinutes(2)), "the job did not stop within 2 minutes");
        Assert.NotEqual(0, mpiexec.Process.ExitCode);
        Assert.Contains("did not complete within 00:00:05", mpiexec.Output());
    }

    [RequiresFact(Component.Mpich)]
    public void FabricCollectives_ReduceGatherAndBroadcastAcrossRanks()
    {
        foreach (var rank in new[] { 0, 1 })
        {
            var results = run.Read("fabric", rank).Split('\n').Select(l => l.Split(' ')).ToDictionary(p => p[0], p => p[1]);
            Assert.Equal("3,30", results["sum"]);
            Assert.Equal("1.5,15", results["mean"]);
            Assert.Equal("2,20", results["max"]);
            Assert.Equal("1,10,2,20", results["gather"]);
            Assert.Equal("2,20", results["broadcast"]);
            Assert.Equal("True", results["saved"]);
            Assert.Equal("True", results["bucketed"]);
        }
    }

    [RequiresFact(Component.Mpich)]
    public void FabricLoopOnTwoRanks_MatchesOneProcessOnBatchesOf2B()
    {
        manual_seed(11);
        var model = new Regressor();
        var optimizer = optim.SGD(model.parameters(), 0.05);
        foreach (var batch in Pairs(RandomBatches.Create(40, batchSize: 4, features: 16, seed: 5)))
        {
            using var scope = NewDisposeScope();
            var x = batch[.., 1..];
            var loss = nn.functional.mse_loss(model.forward(x), x.sum(1, keepdim: true));
            optimizer.zero_grad();
            loss.backward();
            optimizer.step();
        }

        Regressor.AssertClose(Regressor.ParseWeights(model.WeightsText()), run.Weights("fabric-weights", 0), 1e-5);
        Regressor.AssertClose(run.Weights("fabric-weights", 0), run.Weights("fabric-weights", 1), 0);
    }

    [RequiresFact(Component.Mpich)]
    public void DdpWithOneDevice_RunsInThisProcessWithoutMpi()
    {
        using var root = new TempDirectory();
        var batches = RandomBatches.Create(4, batchSize: 4, features: 16, seed: 1);
        var trainer = new Trainer(Quiet(root.Path) with { Strategy = "ddp", Devices = 1, MaxEpochs = 1 });
        trainer.Fit(new Regressor(), batches);
        Assert.Equal((0, 1, true, 4L), (trainer.GlobalRank, trainer.WorldSize, trainer.IsGlobalZero, trainer.GlobalStep));
    }

    [RequiresFact(Component.Mpich)]
    public void NumNodesWithoutDdp_FailsNamingTheOption()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new Trainer(new TrainerOptions { NumNodes = 2 }));
        Assert.Contains("NumNodes = 2 is not allowed: several nodes need Strategy = \"ddp\"", error.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new Trainer(new TrainerOptions { Strategy = "ddp", NumNodes = 0 }));
    }

    [RequiresFact(Component.Mpich)]
    public void DdpOnSeveralDevicesWithoutMpiexec_FailsNamingThePackage()
    {
        // Without mpiexec on PATH the trainer cannot relaunch itself under it.
        var path = Environment.GetEnvironmentVariable("PATH");
        Environment.SetEnvironmentVariable("PATH", "");
        try
        {
            var error = Assert.Throws<InvalidOperationException>(() => new Trainer(new TrainerOptions { Accelerator = "cpu", Strategy = "ddp", Devices = 2 }));
            Assert.Contains("mpiexec was not found on PATH", error.Message);
            Assert.Contains("apt-get install -y mpich", error.Message);
        }
        finally
        {
            Environment.SetEnvironmentVariable("PATH", path);
        }
    }

    [RequiresTheory(Component.Mpich)]
    [InlineData(21, 2)]
    [InlineData(20, 3)]
    [InlineData(5, 4)]
    public void DistributedSampler_ShardsAreDisjointAndCover(int count, int worldSize)
    {
        var eval = Enumerable.Range(0, worldSize).Select(r => new DistributedSampler(count, r, worldSize, shuffle: false, pad: false, seed: 0).ToArray()).ToArray();
        Assert.Equal(Enumerable.Range(0, count).Select(i => (long)i), eval.SelectMany(s => s).Order());

        var train = Enumerable.Range(0, worldSize).Select(r => new DistributedSampler(count, r, worldSize, shuffle: true, pad: true, seed: 4) { Epoch = 1 }).ToArray();
        Assert.All(train, s => Assert.Equal(s.Length, s.Count()));
        Assert.Single(train.Select(s => s.Length).Distinct());
        var all = train.SelectMany(s => s).ToArray();
        Assert.Equal(count, all.Distinct().Count());
        Assert.Equal(all.Length - count, all.Length - all.Distinct().Count());
    }

    private static Dictionary<string, double[]> Fit(TrainerOptions options, IEnumerable<Tensor> loader)
    {
        manual_seed(11);
        var model = new Regressor();
        new Trainer(options).Fit(model, loader);
        return Regressor.ParseWeights(model.WeightsText());
    }

    /// <summary>Batches 2i and 2i+1 joined: what two ranks see together at step i.</summary>
    private static List<Tensor> Pairs(IReadOnlyList<Tensor> batches) =>
        Enumerable.Range(0, batches.Count / 2).Select(i => cat([batches[2 * i], batches[2 * i + 1]]).DetachFromDisposeScope()).ToList();


    /// <summary>The worker's "train" scenario, run once under mpiexec -n 2 for the tests that read its files.</summary>
    public sealed class TrainRun : IDisposable
    {
        private readonly TempDirectory _folder = new();

        public TrainRun()
        {
            using var mpiexec = Mpiexec.Start("train", _folder.Path);
            if (!mpiexec.Process.WaitForExit(TimeSpan.FromMinutes(5)) || mpiexec.Process.ExitCode != 0)
                throw new InvalidOperationException($"mpiexec -n 2 (train) failed:\n{mpiexec.Output()}");
        }

        public string Folder => _folder.Path;

        public string Read(string name, int rank) => File.ReadAllText(Path.Combine(Folder, $"{name}.rank{rank}.txt"));

        public Dictionary<string, double[]> Weights(string name, int rank) => Regressor.ParseWeights(Read(name, rank));

        public long[] Rows(string name, int rank) => Read(name, rank).Split(' ').Select(long.Parse).ToArray();

        public void Dispose() => _folder.Dispose();
    }

    /// <summary>mpiexec -n 2 on the worker.</summary>
    private static class Mpiexec
    {
        public static WorkerProcess Start(string scenario, string folder) => WorkerProcess.Start(scenario, folder, ranks: 2);
    }
}
