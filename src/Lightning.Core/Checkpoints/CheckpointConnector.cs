using System.Text.Json.Nodes;
using Lightning.Callbacks;
using Lightning.Loops;
using static TorchSharp.torch;

namespace Lightning.Checkpoints;

/// <summary>Writes checkpoints from trainer state and restores them in Lightning's order: weights, datamodule, callbacks, loops, optimizers and schedulers.</summary>
internal static class CheckpointConnector
{
    /// <summary>Captures the checkpoint in memory now; the trainer decides when the file is written.</summary>
    public static Checkpoint Capture(Trainer trainer, LightningModule module, bool weightsOnly)
    {
        var checkpoint = Checkpoint.Capture(module, trainer.Optimizers, trainer.CurrentEpoch, trainer.GlobalStep, weightsOnly,
            shardedOptimizers: trainer.Strategy.ShardsOptimizerState);
        trainer.Hooks.Call(Hooks.OnSaveCheckpointModule, module, checkpoint);
        if (trainer.DataModule is { } datamodule)
            checkpoint.DataModuleHyperparameters = Hyperparameters.ToJson(datamodule.Hparams);
        if (!weightsOnly)
        {
            checkpoint.DataModule = trainer.DataModule?.SaveState();
            checkpoint.Loops = new JsonObject
            {
                ["epoch"] = trainer.CurrentEpoch,
                ["batches_done"] = trainer.EpochBatchesDone,
                ["total_batches"] = trainer.FitLoop?.TotalBatches ?? 0,
                ["phase"] = (trainer.FitLoop?.Phase ?? EpochPhase.BetweenEpochs).ToString(),
                ["global_step"] = trainer.GlobalStep,
            };
            using (var rng = LightningSeed.GetRngState()) checkpoint.CaptureRngState(rng.bytes);
            checkpoint.SchedulerSteps = trainer.SchedulerSteps.ToArray();
            if (trainer.Strategy.Precision.SaveState() is { } precision) checkpoint.Callbacks[PrecisionKey(trainer)] = precision;
            trainer.Hooks.Call(Hooks.OnSaveCheckpointCallbacks, module, checkpoint);
        }
        return checkpoint;
    }

    /// <summary>Turns "last", "best" or a path into a checkpoint; "last" with none saved yet means a fresh start, as in Lightning.</summary>
    public static Checkpoint? Resolve(Trainer trainer, string ckptPath, Stage stage)
    {
        trainer.SyncCheckpoints();
        if (ckptPath == "last") return ResolveLast(trainer, stage);
        var path = ckptPath == "best" ? BestPath(trainer) : ckptPath;
        trainer.CkptPath = path;
        return Checkpoint.Load(path);
    }

    private static string BestPath(Trainer trainer)
    {
        var best = trainer.CheckpointCallback?.BestModelPath;
        if (string.IsNullOrEmpty(best))
            throw new InvalidOperationException(
                $"ckptPath = \"best\" needs a ModelCheckpoint that has saved a checkpoint; {(trainer.CheckpointCallback is null ? "there is none" : "it has saved none yet")}.");
        return best;
    }

    /// <summary>
    /// The newest complete checkpoint of this run (Lightning's fault-tolerant "last"): the files this trainer's checkpoint
    /// callbacks wrote, every checkpoint in their folders, and, where a folder belongs to a logger version
    /// (<c>version_N/checkpoints</c>), the checkpoints of the run's other versions, since a restarted process logs to a new
    /// version. Files are tried newest first; one that cannot be read (or holds weights only, for a fit) is skipped.
    /// </summary>
    private static Checkpoint? ResolveLast(Trainer trainer, Stage stage)
    {
        var candidates = trainer.CheckpointCallbacks.SelectMany(c => new[] { c.LastModelPath, c.BestModelPath })
            .Concat(trainer.Callbacks.OfType<OnExceptionCheckpoint>().Select(c => c.CheckpointPath))
            .Concat(CheckpointFolders(trainer).Distinct().Where(Directory.Exists).SelectMany(folder => Directory.EnumerateFiles(folder, "*.ckpt")))
            .OfType<string>().Select(Path.GetFullPath).Distinct().Where(File.Exists)
            .OrderByDescending(File.GetLastWriteTimeUtc).ToList();
        foreach (var path in candidates)
        {
            Checkpoint checkpoint;
            try
            {
                checkpoint = Checkpoint.Load(path);
            }
            catch (Exception e) when (e is InvalidDataException or IOException or NotSupportedException)
            {
                Console.Error.WriteLine($"ckptPath = \"last\": skipping '{path}': {e.Message}");
                continue;
            }
            if (stage == Stage.Fit && checkpoint.WeightsOnly) continue;
            trainer.CkptPath = path;
            return checkpoint;
        }
        Console.Error.WriteLine($"ckptPath = \"last\" but no checkpoint was found; {stage} starts from scratch.");
        trainer.CkptPath = null;
        return null;
    }

    private static IEnumerable<string> CheckpointFolders(Trainer trainer)
    {
        foreach (var folder in trainer.CheckpointCallbacks.Select(c => c.DirPath).OfType<string>())
        {
            yield return folder;
            var version = Path.GetDirectoryName(folder);
            if (Path.GetFileName(folder) != "checkpoints" || version is null || !Path.GetFileName(version).StartsWith("version_", StringComparison.Ordinal))
                continue;
            var versions = Path.GetDirectoryName(version)!;
            if (!Directory.Exists(versions)) continue;
            foreach (var other in Directory.EnumerateDirectories(versions, "version_*"))
                yield return Path.Combine(other, "checkpoints");
        }
    }

    /// <summary>Precision state sits beside callback state under the plugin's name, as Lightning's "MixedPrecision" key.</summary>
    private static string PrecisionKey(Trainer trainer) => trainer.Strategy.Precision.StateKey;

    public static void RestoreWeights(Trainer trainer, LightningModule module, Checkpoint? checkpoint)
    {
        if (checkpoint is null) return;
        trainer.Hooks.Call(Hooks.OnLoadCheckpointModule, module, checkpoint);
        checkpoint.RestoreWeights(module);
    }

    public static void RestoreWeightsAndCallbacks<TBatch>(Trainer trainer, LightningModule module, DataSource<TBatch> data, Checkpoint checkpoint)
    {
        RestoreWeights(trainer, module, checkpoint);
        if (data.DataModule is { } datamodule)
        {
            if (checkpoint.DataModule is { } state) datamodule.LoadState(state);
            if (datamodule.Hparams.Count == 0 && checkpoint.DataModuleHyperparameters.Count > 0)
                datamodule.RestoreHyperparameters(checkpoint.DataModuleHyperparameters);
        }
        if (checkpoint.Callbacks[PrecisionKey(trainer)] is JsonObject precision) trainer.Strategy.Precision.LoadState(precision);
        trainer.Hooks.Call(Hooks.OnLoadCheckpointCallbacks, module, checkpoint);
    }

    public static void RestoreTrainingState(Trainer trainer, FitLoop loop, Checkpoint checkpoint)
    {
        if (checkpoint.WeightsOnly)
            throw new InvalidOperationException("The checkpoint holds weights only; resuming a fit needs a full checkpoint (weightsOnly: false).");
        var epoch = (int)checkpoint.Loops["epoch"]!;
        var batchesDone = (int)checkpoint.Loops["batches_done"]!;
        var phase = Enum.Parse<EpochPhase>((string?)checkpoint.Loops["phase"] ?? nameof(EpochPhase.BetweenEpochs));

        // TorchSharp schedulers keep no state dict: replay their steps on the fresh optimizer, then load its state.
        var configs = trainer.LrSchedulerConfigs;
        for (int i = 0; i < configs.Count && i < checkpoint.SchedulerSteps.Length; i++)
            for (int s = 0; s < checkpoint.SchedulerSteps[i]; s++) configs[i].Scheduler.step();
        trainer.SchedulerSteps = checkpoint.SchedulerSteps.Length == configs.Count ? checkpoint.SchedulerSteps.ToArray() : new int[configs.Count];
        if (checkpoint.OptimizerShards is not null) checkpoint.RestoreOptimizerShards(trainer.Optimizers);
        else checkpoint.RestoreOptimizers(trainer.Optimizers);
        trainer.Strategy.OptimizerStateLoaded(trainer.Optimizers);

        trainer.GlobalStep = (long)checkpoint.Loops["global_step"]!;
        loop.TotalBatches = (long?)checkpoint.Loops["total_batches"] ?? 0;
        if (phase == EpochPhase.AfterBatches)
        {
            // Saved at the end of an epoch, before that epoch's scheduler steps: take them now.
            for (int i = 0; i < configs.Count; i++)
                if (configs[i].Interval == SchedulerInterval.Epoch && !configs[i].ReduceOnPlateau && (epoch + 1) % configs[i].Frequency == 0)
                {
                    configs[i].Scheduler.step();
                    trainer.SchedulerSteps[i]++;
                }
            trainer.CurrentEpoch = epoch + 1;
        }
        else
        {
            trainer.CurrentEpoch = epoch;
            loop.ResumeBatches = phase == EpochPhase.InBatches ? batchesDone : 0;
        }
        if (checkpoint.RngState is { } rng)
        {
            // libtorch aborts the process on a state of the wrong size: refuse it here instead.
            using var current = LightningSeed.GetRngState();
            if (rng.Length != current.numel())
                throw new InvalidDataException(
                    $"The checkpoint's random generator state has {rng.Length} bytes; libtorch's CPU generator state has {current.numel()}.");
            loop.ResumeRngState = tensor(rng.ToArray(), [rng.Length], ScalarType.Byte).DetachFromDisposeScope();
        }
    }
}
