using System.Diagnostics;
using System.Globalization;
using System.Text.Json.Nodes;
using Lightning.Checkpoints;
using Lightning.Strategies;
using Lightning.Testing;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Strategies;

/// <summary>
/// Strategy "ddp_sharded" (ZeRO stage 2 on MPI): the worker trains the same runs under "ddp" and "ddp_sharded" under
/// <c>mpiexec -n 2</c> and <c>-n 3</c>, and saves at 2 ranks a checkpoint that is resumed at 3, 2 and 1; the tests compare.
/// </summary>
public class DdpShardedTests(DdpShardedTests.Runs runs) : IClassFixture<DdpShardedTests.Runs>
{
    private static readonly string[] Scenarios = ["adam", "clip", "accumulate", "scheduler", "manual", "bf16", "scaled"];

    public static TheoryData<int, string> RunsAtTwoAndThreeRanks()
    {
        var data = new TheoryData<int, string>();
        foreach (var ranks in new[] { 2, 3 })
            foreach (var run in Scenarios.Concat(ShardingRegressor.OptimizerNames.Skip(1)))
                data.Add(ranks, run);
        return data;
    }

    [RequiresTheory(Component.Mpich)]
    [MemberData(nameof(RunsAtTwoAndThreeRanks))]
    public void Sharded_ReachesTheWeightsOfDdp(int ranks, string run)
    {
        var folder = runs.Compared(ranks);
        var ddp = Weights(folder, $"{run}-ddp", 0);
        for (int rank = 0; rank < ranks; rank++)
        {
            // Every rank ends with the same whole parameters, equal to "ddp"'s up to float32 rounding (clipping sums norms in another order).
            Regressor.AssertClose(ddp, Weights(folder, $"{run}-ddp_sharded", rank), 1e-6);
            Regressor.AssertClose(Weights(folder, $"{run}-ddp_sharded", 0), Weights(folder, $"{run}-ddp_sharded", rank), 0);
        }
    }

    [RequiresTheory(Component.Mpich)]
    [InlineData(2)]
    [InlineData(3)]
    public void TheComparedRuns_DifferFromEachOther(int ranks)
    {
        // The options take effect: clipping, accumulation, the scheduler and manual optimization each change the result.
        var folder = runs.Compared(ranks);
        var adam = Weights(folder, "adam-ddp_sharded", 0);
        foreach (var run in new[] { "clip", "accumulate", "scheduler", "manual" })
            Assert.True(Gap(adam, Weights(folder, $"{run}-ddp_sharded", 0)) > 1e-3, $"{run} ended where plain Adam did");
    }

    [RequiresTheory(Component.Mpich)]
    [InlineData(2)]
    [InlineData(3)]
    public void FabricLoop_SavedAndLoadedHalfway_MatchesDdp(int ranks)
    {
        // A hand-written loop: Backward, ClipGradients by norm, Step; Save after 10 steps (optimizer shards beside the
        // file under "ddp_sharded"), Load into a fresh model and optimizer, 10 more steps.
        var folder = runs.Compared(ranks);
        Assert.True(File.Exists(Path.Combine(folder, "fabric-ddp_sharded.ckpt")));
        Assert.Single(Directory.GetDirectories(OptimizerShardFiles.Folder(Path.Combine(folder, "fabric-ddp_sharded.ckpt"))));
        (string Step, Dictionary<string, double[]> Weights) Read(string strategy, int rank)
        {
            var text = File.ReadAllText(Path.Combine(folder, $"fabric-{strategy}.rank{rank}.txt"));
            var newline = text.IndexOf('\n');
            return (text[..newline], Regressor.ParseWeights(text[(newline + 1)..]));
        }
        var ddp = Read("ddp", 0);
        for (int rank = 0; rank < ranks; rank++)
        {
            var sharded = Read("ddp_sharded", rank);
            Assert.Equal("10", sharded.Step);
            Regressor.AssertClose(ddp.Weights, sharded.Weights, 1e-6);
        }
    }

    [RequiresTheory(Component.Mpich)]
    [InlineData(2)]
    [InlineData(3)]
    public void Overflow_SeenByOneShardOnly_SkipsTheStepOnEveryRank(int ranks)
    {
        // Rank 1 makes one gradient of the last parameter infinite at step 3; under "ddp_sharded" only the last rank's
        // shard holds it. Every rank must skip that step and halve the scale, as under "ddp".
        var folder = runs.Compared(ranks);
        for (int rank = 0; rank < ranks; rank++)
        {
            var scale = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, $"scale-ddp_sharded.rank{rank}.txt")))!;
            Assert.Equal(65536.0 / 2, (double)scale["scale"]!);
            Assert.Equal(File.ReadAllText(Path.Combine(folder, "scale-ddp.rank0.txt")), scale.ToJsonString());
        }
    }

    [RequiresTheory(Component.Mpich)]
    [InlineData(3, 1e-6)]
    [InlineData(2, 0)]
    public void SavedAtTwoRanks_ResumedAtM_MatchesTheUninterruptedRun(int ranks, double tolerance)
    {
        // Bit for bit when the world size is the same; resharded to 3 ranks, within float32 rounding of the averages.
        var straight = Weights(runs.Checkpoints, "straight", 0);
        for (int rank = 0; rank < ranks; rank++)
            Regressor.AssertClose(straight, Weights(runs.Checkpoints, $"resumed-{ranks}", rank), tolerance);
    }

    [RequiresTheory(Component.Mpich)]
    [InlineData("ddp_sharded")]
    [InlineData("single_device")]
    public void SavedAtTwoRanks_ResumesInOneProcess(string strategy)
    {
        using var root = new TempDirectory();
        var trainer = new Trainer(Quiet(root.Path) with { Strategy = strategy, MaxEpochs = 2 });
        manual_seed(11);
        var model = new ShardingRegressor(scheduler: true);
        trainer.Fit(model, Batches(), ckptPath: runs.CheckpointFile);

        Assert.Equal(20, trainer.GlobalStep);
        Regressor.AssertClose(Weights(runs.Checkpoints, "straight", 0), Regressor.ParseWeights(model.WeightsText()), 0);
    }

    [RequiresFact(Component.Mpich)]
    public void ShardedCheckpoint_IsAFileBesideAFolderOfOneShardPerRank_AndLoadsAsAWholeModule()
    {
        var shards = Directory.GetDirectories(OptimizerShardFiles.Folder(runs.CheckpointFile));
        var save = Assert.Single(shards);
        Assert.Equal(["rank-00000-of-00002.bin", "rank-00001-of-00002.bin"], Directory.GetFiles(save).Select(Path.GetFileName).Order());

        var model = LightningModule.LoadFromCheckpoint<ShardingRegressor>(runs.CheckpointFile);
        Regressor.AssertClose(Weights(runs.Checkpoints, "half", 0), Regressor.ParseWeights(model.WeightsText()), 0);
    }

    [RequiresFact(Component.Mpich)]
    public void ShardedCheckpoint_WithAShardMissing_IsRefusedNamingIt()
    {
        using var copy = new TempDirectory();
        var file = copy.Combine("half.ckpt");
        File.Copy(runs.CheckpointFile, file);
        var save = Directory.GetDirectories(OptimizerShardFiles.Folder(runs.CheckpointFile)).Single();
        var target = Path.Combine(OptimizerShardFiles.Folder(file), Path.GetFileName(save));
        Directory.CreateDirectory(target);
        File.Copy(Path.Combine(save, "rank-00000-of-00002.bin"), Path.Combine(target, "rank-00000-of-00002.bin"));

        var error = Assert.Throws<InvalidDataException>(() => Checkpoint.Load(file));
        Assert.Contains("rank-00001-of-00002.bin", error.Message);
        Assert.Contains("missing or incomplete", error.Message);
    }

    [RequiresFact(Component.Mpich)]
    public void DeadRank_EndsEveryRankWithAnErrorWithinTheTimeout()
    {
        // Rank 1 leaves at step 3; rank 0 waits in a collective until DistributedTimeout (5 s) and names it.
        var output = DdpTests.RunUntilRankOneExits("exit-sharded");
        Assert.Contains("did not complete within 00:00:05", output);
        Assert.Contains("rank 1 did not arrive", output);
    }

    [RequiresFact(Component.Mpich)]
    public void Step7Line_OnFourGpus_RunsOneShardedRankPerGpu()
    {
        // Trainer(devices=4, accelerator="gpu", strategy="deepspeed_stage_2", precision=16) with four CUDA devices
        // injected: started as one process, it relaunches itself under mpiexec -n 4; rank r drives cuda:r with loss scaling.
        using var folder = new TempDirectory();
        using var worker = WorkerProcess.Start("gpus-zero2", folder.Path);
        Assert.True(worker.Process.WaitForExit(TimeSpan.FromMinutes(2)), "the four ranks did not finish within 2 minutes");
        Assert.True(worker.Process.ExitCode == 0, $"exit code {worker.Process.ExitCode}:\n{worker.Output()}");
        for (int rank = 0; rank < 4; rank++)
            Assert.Equal($"cuda DdpShardedStrategy 4 {rank} {rank} cuda:{rank} 16-mixed", File.ReadAllText(folder.Combine($"gpus.rank{rank}.txt")));
    }

    [RequiresTheory(Component.Mpich)]
    [InlineData("ddp_sharded")]
    [InlineData("zero_stage_2")]
    [InlineData("deepspeed_stage_2")]
    public void Names_SelectTheShardedStrategy(string name)
    {
        var trainer = new Trainer(new TrainerOptions { Strategy = name, Accelerator = "cpu", Devices = 1, Loggers = [], EnableProgressBar = false });
        Assert.IsType<DdpShardedStrategy>(trainer.Strategy);
        Assert.Equal((0, 1), (trainer.GlobalRank, trainer.WorldSize));
    }

    [RequiresFact(Component.Mpich)]
    public void OneProcess_TrainsAsOneDevice()
    {
        // World size 1: one shard holding everything, stepped by the rebuilt optimizer; clipping and the scheduler still apply.
        using var root = new TempDirectory();
        Dictionary<string, double[]> Train(string strategy)
        {
            manual_seed(11);
            var model = new ShardingRegressor(scheduler: true);
            new Trainer(Quiet(root.Path) with { Strategy = strategy, MaxSteps = 12, GradientClipVal = 0.05 }).Fit(model, Batches());
            return Regressor.ParseWeights(model.WeightsText());
        }
        Regressor.AssertClose(Train("single_device"), Train("ddp_sharded"), 1e-6);
    }

    [RequiresFact(Component.Mpich)]
    public void AnOptimizerThatIsNotElementwise_IsRefusedNamingIt()
    {
        using var root = new TempDirectory();
        var trainer = new Trainer(Quiet(root.Path) with { Strategy = "ddp_sharded", MaxSteps = 1 });
        var error = Assert.Throws<NotSupportedException>(() => trainer.Fit(new LbfgsRegressor(), Batches()));
        Assert.Contains("Strategy = \"ddp_sharded\"", error.Message);
        Assert.Contains("LBFGS", error.Message);
        Assert.Contains("use \"ddp\"", error.Message);
    }

    [RequiresFact(Component.Mpich)]
    public void UnknownStrategyName_ListsTheShardedOne()
    {
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => new Trainer(new TrainerOptions { Strategy = "deepspeed" }));
        Assert.Contains("\"ddp_sharded\"", error.Message);
        Assert.Contains("\"deepspeed_stage_2\"", error.Message);
    }

    private sealed class LbfgsRegressor : LightningModule<Tensor>
    {
        private readonly TorchSharp.Modules.Linear net = nn.Linear(15, 1);

        public LbfgsRegressor() : base(nameof(LbfgsRegressor)) => RegisterComponents();

        public override Tensor? TrainingStep(Tensor batch, int batchIdx) =>
            nn.functional.mse_loss(net.forward(batch[.., 1..]), batch[.., 1..].sum(1, keepdim: true));

        public override OptimizerConfiguration ConfigureOptimizers() => optim.LBFGS(parameters());
    }

    private static TrainerOptions Quiet(string root) => new()
    {
        DefaultRootDir = root, Accelerator = "cpu", EnableProgressBar = false, EnableModelSummary = false, EnableCheckpointing = false,
        Loggers = [], NumSanityValSteps = 0,
    };

    /// <summary>The batches of the worker's checkpoint runs (every rank sees all of them).</summary>
    private static List<Tensor> Batches() => RandomBatches.Create(10, batchSize: 8, features: 16, seed: 9).ToList();

    private static Dictionary<string, double[]> Weights(string folder, string name, int rank) =>
        Regressor.ParseWeights(File.ReadAllText(Path.Combine(folder, $"{name}.rank{rank}.txt")));

    private static double Gap(Dictionary<string, double[]> a, Dictionary<string, double[]> b) =>
        a.Max(p => p.Value.Zip(b[p.Key], (x, y) => Math.Abs(x - y)).Max());


    /// <summary>
    /// The worker's runs, made once: "sharded" under mpiexec -n 2 and -n 3; "sharded-save" at 2 ranks, then
    /// "sharded-resume" at 3 and at 2 ranks from its checkpoint.
    /// </summary>
    public sealed class Runs : IDisposable
    {
        private readonly TempDirectory _two = new(), _three = new(), _checkpoints = new();

        public Runs()
        {
            Run("sharded", _two.Path, 2);
            Run("sharded", _three.Path, 3);
            Run("sharded-save", _checkpoints.Path, 2);
            Run("sharded-resume", _checkpoints.Path, 3);
            Run("sharded-resume", _checkpoints.Path, 2);
        }

        public string Compared(int ranks) => ranks == 2 ? _two.Path : _three.Path;

        public string Checkpoints => _checkpoints.Path;

        public string CheckpointFile => Path.Combine(_checkpoints.Path, "half.ckpt");

        private static void Run(string scenario, string folder, int ranks)
        {
            using var mpiexec = WorkerProcess.Start(scenario, folder, ranks);
            var clock = Stopwatch.StartNew();
            if (!mpiexec.Process.WaitForExit(TimeSpan.FromMinutes(5)) || mpiexec.Process.ExitCode != 0)
                throw new InvalidOperationException($"mpiexec -n {ranks} ({scenario}) failed after {clock.Elapsed.TotalSeconds:0} s:\n{mpiexec.Output()}");
        }

        public void Dispose()
        {
            _two.Dispose();
            _three.Dispose();
            _checkpoints.Dispose();
        }
    }
}
