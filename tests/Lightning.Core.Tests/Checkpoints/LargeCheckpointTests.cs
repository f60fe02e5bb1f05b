using System.Globalization;
using Lightning.Checkpoints;
using Lightning.Testing;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Checkpoints;

/// <summary>Measures the process's memory, so it runs alone: the other test classes would add their own allocations.</summary>
[CollectionDefinition(nameof(LargeCheckpointTests), DisableParallelization = true)]
public sealed class LargeCheckpointCollection;

/// <summary>
/// A checkpoint larger than any in-memory buffer could hold (2.5 GiB of float32, one tensor alone past 2 GiB) streams
/// to disk and back: the save adds at most 256 MiB to the process's peak memory beyond the parameters themselves.
/// </summary>
[Collection(nameof(LargeCheckpointTests))]
public class LargeCheckpointTests
{
    private const long BigElements = 600_000_000;                      // 2.24 GiB: past int.MaxValue bytes
    private const long SmallElements = 2_684_354_560 / 4 - BigElements; // the rest of 2.5 GiB
    private const long FillChunk = 1 << 24;
    private const long Slack = 256L << 20;

    [Fact]
    public void A2Point5GiBModule_SavesWithinItsSizePlus256MiB_AndLoadsBackBitForBit()
    {
        using var root = new TempDirectory();
        var path = root.Combine("huge.ckpt");
        GC.Collect();
        ResetPeak();
        var before = Status("VmRSS");

        var module = new Huge();
        Fill(module, seedOffset: 0);
        var parameters = (BigElements + SmallElements) * sizeof(float);
        var checkpoint = Checkpoint.Capture(module, [], epoch: 0, globalStep: 0, weightsOnly: true);
        Assert.True(checkpoint.IsLive, "a state this large must stream from the module, not be copied");
        ResetPeak();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        checkpoint.SaveAndRelease(path);
        var saveTime = clock.Elapsed;
        var peak = Status("VmHWM");

        Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"2.5 GiB save: RSS before the module {before >> 20} MiB, peak during the save {peak >> 20} MiB, " +
            $"parameters {parameters >> 20} MiB, over them {(peak - before - parameters) >> 20} MiB (allowed {Slack >> 20}); " +
            $"file {new FileInfo(path).Length >> 20} MiB written in {saveTime.TotalSeconds:0.0} s"));
        Assert.True(peak <= before + parameters + Slack,
            $"peak {peak >> 20} MiB > {before >> 20} MiB before + {parameters >> 20} MiB of parameters + {Slack >> 20} MiB");

        using (no_grad())
        {
            module.big.zero_();
            module.small.zero_();
        }
        clock.Restart();
        Checkpoint.Load(path).RestoreWeights(module);
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"2.5 GiB load: {clock.Elapsed.TotalSeconds:0.0} s"));
        Verify(module);
    }

    /// <summary>Fills each parameter chunk by chunk from its own seeded generator, so it can be checked again without a copy.</summary>
    private static void Fill(Huge module, int seedOffset)
    {
        using var noGrad = no_grad();
        foreach (var (parameter, seed) in new[] { (module.big, 1), (module.small, 2) })
            for (long start = 0, chunk = 0; start < parameter.numel(); start += FillChunk, chunk++)
            {
                using var generator = new Generator((ulong)(seed * 1_000_003 + chunk + seedOffset));
                parameter.narrow(0, start, Math.Min(FillChunk, parameter.numel() - start)).uniform_(-1, 1, generator);
            }
    }

    private static void Verify(Huge module)
    {
        using var noGrad = no_grad();
        foreach (var (parameter, seed) in new[] { (module.big, 1), (module.small, 2) })
            for (long start = 0, chunk = 0; start < parameter.numel(); start += FillChunk, chunk++)
            {
                using var scope = NewDisposeScope();
                using var generator = new Generator((ulong)(seed * 1_000_003 + chunk));
                var n = Math.Min(FillChunk, parameter.numel() - start);
                var expected = empty(n).uniform_(-1, 1, generator);
                Assert.True(parameter.narrow(0, start, n).eq(expected).all().item<bool>(), $"chunk {chunk} of parameter {seed} differs");
            }
    }

    /// <summary>Resets the peak resident size (VmHWM) to the current one (Linux: writing 5 to clear_refs).</summary>
    private static void ResetPeak() => File.WriteAllText("/proc/self/clear_refs", "5");

    private static long Status(string field)
    {
        var line = File.ReadLines("/proc/self/status").First(l => l.StartsWith(field + ":", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
    }

    private sealed class Huge : LightningModule<Tensor>
    {
        public readonly TorchSharp.Modules.Parameter big = new(empty(BigElements));
        public readonly TorchSharp.Modules.Parameter small = new(empty(SmallElements));

        public Huge() : base(nameof(Huge)) => RegisterComponents();

        public override Tensor? TrainingStep(Tensor batch, int batchIdx) => throw new NotSupportedException();

        public override OptimizerConfiguration ConfigureOptimizers() => OptimizerConfiguration.None;
    }
}
