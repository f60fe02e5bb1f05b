using Lightning.Accelerators;
using Lightning.Checkpoints;
using Lightning.Precision;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Strategies;

/// <summary>
/// How a run is spread over devices and processes (Lightning's strategies). A strategy owns the
/// <see cref="Accelerators.Accelerator"/> and the <see cref="PrecisionPlugin"/>; the trainer, its loops and Fabric ask it
/// to place the module and batches, run the steps, the backward pass and the optimizer step, talk to the other processes
/// and write checkpoints. The built-ins are chosen by name (<see cref="TrainerOptions.Strategy"/>): "single_device",
/// "dp" and "ddp"; derive from this class and pass an instance to change how a step runs without touching the trainer.
/// </summary>
/// <remarks>
/// The trainer connects a strategy to its accelerator, devices and precision when it is built; the members that need
/// them fail before that. Every virtual member has the single-process behaviour as its default.
/// </remarks>
public abstract class Strategy
{
    private readonly CheckpointWriter _checkpoints = new();
    private Accelerator? _accelerator;
    private PrecisionPlugin? _precision;
    private IReadOnlyList<Device> _devices = [];
    private bool _transfersBatches;
    private bool _convertsModuleLayout;
    private bool _inStage;

    /// <summary>The accelerator the strategy runs on.</summary>
    public Accelerator Accelerator => _accelerator ?? throw NotConnected();

    /// <summary>The precision plugin the strategy applies.</summary>
    public PrecisionPlugin Precision => _precision ?? throw NotConnected();

    /// <summary>The devices asked for on this node (Lightning's <c>parallel_devices</c>).</summary>
    public IReadOnlyList<Device> ParallelDevices => _accelerator is null ? throw NotConnected() : _devices;

    /// <summary>The <see cref="Devices"/> setting the devices came from.</summary>
    public Devices RequestedDevices { get; private set; }

    /// <summary>
    /// The memory format of floating 4-D (5-D) batches, and of the module's weights of that rank unless turned off
    /// (<see cref="TrainerOptions.MemoryFormat"/>): "contiguous_format", "channels_last" or "channels_last_3d".
    /// </summary>
    public string MemoryFormat { get; private set; } = MemoryLayout.Contiguous;

    /// <summary>Machines taking part.</summary>
    public int NumNodes { get; private set; } = 1;

    /// <summary>The device of the module and the batches in this process; the first of <see cref="ParallelDevices"/> by default.</summary>
    public virtual Device RootDevice => ParallelDevices[0];

    /// <summary>The number of processes training together.</summary>
    public virtual int WorldSize => 1;

    /// <summary>This process's rank among all of them.</summary>
    public virtual int GlobalRank => 0;

    /// <summary>This process's rank among the processes of its node.</summary>
    public virtual int LocalRank => 0;

    /// <summary>True for the process that writes logs and checkpoints.</summary>
    public bool IsGlobalZero => GlobalRank == 0;

    /// <summary>
    /// Joins the other processes, if any (called once, when the trainer or Fabric is built, after the accelerator,
    /// devices and precision are set).
    /// </summary>
    protected internal virtual void SetupEnvironment() { }

    /// <summary>Checks that the devices suit this strategy; fails naming the setting otherwise.</summary>
    protected internal virtual void CheckDevices() { }

    /// <summary>Called when a trainer's stage starts, after the setup hooks: places the module (<see cref="SetupModule"/>).</summary>
    public virtual void Setup(Trainer trainer)
    {
        ArgumentNullException.ThrowIfNull(trainer);
        SetupModule(trainer.LightningModule ?? throw new InvalidOperationException("Setup needs the trainer's module: call it when a stage starts."));
    }

    /// <summary>
    /// Moves <paramref name="module"/> to <see cref="RootDevice"/>, casts it for the precision and lays out its weights in
    /// <see cref="MemoryFormat"/> (when asked); a distributed strategy also makes every process start from the same weights.
    /// </summary>
    public virtual void SetupModule(nn.Module module)
    {
        ArgumentNullException.ThrowIfNull(module);
        if (RootDevice.type != DeviceType.CPU) module.to(RootDevice);
        Precision.ConvertModule(module);
        if (_convertsModuleLayout) MemoryLayout.ApplyToModule(module, MemoryFormat);
    }

    /// <summary>This process's share of a data loader (Lightning's distributed sampler); the loader itself in one process.</summary>
    public virtual IEnumerable<TBatch> ShardLoader<TBatch>(IEnumerable<TBatch> loader, bool training)
    {
        ArgumentNullException.ThrowIfNull(loader);
        return loader;
    }

    /// <summary>A batch (a tensor, or a list, array or string dictionary of tensors) on <see cref="RootDevice"/> with floating tensors in the precision's dtype and in <see cref="MemoryFormat"/>; the same object when nothing needs to change.</summary>
    public virtual TBatch BatchToDevice<TBatch>(TBatch batch) =>
        _transfersBatches ? BatchTransfer.Apply(batch, RootDevice, Precision.Dtype, MemoryFormat) : batch;

    /// <summary>Runs the module's training step in the precision's forward context; returns its loss (null skips the step).</summary>
    public virtual Tensor? TrainingStep<TBatch>(LightningModule<TBatch> module, TBatch batch, int batchIdx)
    {
        ArgumentNullException.ThrowIfNull(module);
        using (Precision.ForwardContext()) return module.TrainingStep(batch, batchIdx);
    }

    /// <summary>Runs the module's validation step in the precision's forward context.</summary>
    public virtual void ValidationStep<TBatch>(LightningModule<TBatch> module, TBatch batch, int batchIdx)
    {
        ArgumentNullException.ThrowIfNull(module);
        using (Precision.ForwardContext()) module.ValidationStep(batch, batchIdx);
    }

    /// <summary>Runs the module's test step in the precision's forward context.</summary>
    public virtual void TestStep<TBatch>(LightningModule<TBatch> module, TBatch batch, int batchIdx)
    {
        ArgumentNullException.ThrowIfNull(module);
        using (Precision.ForwardContext()) module.TestStep(batch, batchIdx);
    }

    /// <summary>Runs the module's prediction step in the precision's forward context.</summary>
    public virtual Tensor PredictStep<TBatch>(LightningModule<TBatch> module, TBatch batch, int batchIdx)
    {
        ArgumentNullException.ThrowIfNull(module);
        using (Precision.ForwardContext()) return module.PredictStep(batch, batchIdx);
    }

    /// <summary>The backward pass of <paramref name="loss"/> as the precision wants it (scaled for float16), through the module's <see cref="LightningModule.Backward"/> when there is one.</summary>
    public virtual void Backward(Tensor loss, LightningModule? module = null)
    {
        ArgumentNullException.ThrowIfNull(loss);
        var tensor = Precision.PreBackward(loss);
        if (module is null) tensor.backward();
        else module.Backward(tensor);
    }

    /// <summary>Makes the gradients of <paramref name="module"/>'s parameters the same on every process (their mean over the processes); nothing in one process.</summary>
    public virtual void ReduceGradients(nn.Module module) { }

    /// <summary>One optimizer step through the precision plugin; see <see cref="PrecisionPlugin.OptimizerStep"/>.</summary>
    public virtual OptimizerStepOutcome OptimizerStep(optim.Optimizer optimizer, Func<Tensor?>? closure, Action? beforeStep) =>
        Precision.OptimizerStep(optimizer, closure, beforeStep);

    /// <summary>
    /// Clips the gradients of <paramref name="optimizer"/>'s parameters by total norm or by value, after the precision
    /// makes them true gradients (Lightning's <c>clip_gradients</c>); returns the total norm before clipping when clipping
    /// by norm. A sharded strategy computes the norm over every process's shard.
    /// </summary>
    public virtual double? ClipGradients(optim.Optimizer optimizer, double clipVal, GradientClipAlgorithm algorithm) =>
        Precision.ClipGradients(optimizer, clipVal, algorithm);

    /// <summary>Reduces scalars over the processes (the same operation for each); a copy in one process.</summary>
    public virtual double[] Reduce(double[] values, ReduceFx reduce)
    {
        ArgumentNullException.ThrowIfNull(values);
        return values.ToArray();
    }

    /// <summary>Reduces a tensor over the processes into a new tensor (mean, sum, min or max); a copy in one process.</summary>
    public virtual Tensor Reduce(Tensor tensor, ReduceFx reduce)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        return tensor.clone();
    }

    /// <summary>Every process's tensor (the same shape everywhere) stacked along a new first dimension, in rank order.</summary>
    public virtual Tensor AllGather(Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        return tensor.unsqueeze(0).clone();
    }

    /// <summary>Process <paramref name="src"/>'s tensor on every process (the same shape and dtype everywhere), as a new tensor.</summary>
    public virtual Tensor Broadcast(Tensor tensor, int src = 0)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        return tensor.clone();
    }

    /// <summary>Rank 0's string on every process (e.g. a folder rank 0 alone chose); every process must call it at the same point.</summary>
    public virtual string? Broadcast(string? value) => value;

    /// <summary>Waits until every process gets here.</summary>
    public virtual void Barrier() { }

    /// <summary>True on every process when <paramref name="decision"/> is true on any (Lightning's <c>reduce_boolean_decision</c> with <c>all=False</c>), so processes stop together.</summary>
    public bool ReduceBooleanDecision(bool decision) => WorldSize == 1 ? decision : Reduce([decision ? 1.0 : 0.0], ReduceFx.Max)[0] > 0;

    /// <summary>
    /// Writes a checkpoint the trainer captured (global rank zero only; the other processes release it). While a stage
    /// runs the file is written in the background about a second later (not at all if the same file is saved again or
    /// deleted before then) and is on disk when the stage returns; otherwise, and for a module too large to copy in
    /// memory (see <see cref="Checkpoint"/>), it is written at once.
    /// </summary>
    public void SaveCheckpoint(Checkpoint checkpoint, string path)
    {
        ArgumentNullException.ThrowIfNull(checkpoint);
        if (string.IsNullOrWhiteSpace(path))
        {
            checkpoint.Release();
            throw new ArgumentException($"path = \"{path}\" is not allowed: give the checkpoint file to write.", nameof(path));
        }
        try
        {
            if (!checkpoint.WeightsOnly) WriteShards(checkpoint, path);
        }
        catch
        {
            checkpoint.Release();
            throw;
        }
        if (!IsGlobalZero) checkpoint.Release();
        else if (checkpoint.OptimizerShards is not null)
        {
            // The file names the shards every rank just wrote: written now, it commits them, and older saves' shards go.
            if (_inStage) _checkpoints.Flush();
            _checkpoints.WriteNow(path, checkpoint.SaveAndRelease);
            OptimizerShardFiles.RemoveOlder(path, checkpoint.OptimizerShards);
        }
        else if (_inStage && !checkpoint.IsLive) _checkpoints.Write(path, checkpoint.SaveAndRelease, checkpoint.Release);
        else
        {
            // A large checkpoint refers to the live weights: it is written now, after the writes queued before it.
            if (_inStage) _checkpoints.Flush();
            _checkpoints.WriteNow(path, checkpoint.SaveAndRelease);
        }
    }

    /// <summary>Deletes a checkpoint file after any pending write of it (global rank zero only); checkpoint callbacks use this, not <c>File.Delete</c>.</summary>
    public void RemoveCheckpoint(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        if (!IsGlobalZero) return;
        if (_inStage) _checkpoints.Delete(path);
        else File.Delete(path);
        OptimizerShardFiles.RemoveAll(path);
    }

    /// <summary>True when the checkpoint file exists or is being written, and is not about to be deleted.</summary>
    public bool CheckpointExists(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        return _checkpoints.Exists(path);
    }

    /// <summary>True when this strategy writes the optimizer state itself, in shards (<see cref="WriteShards"/>), instead of inside the checkpoint file.</summary>
    internal virtual bool ShardsOptimizerState => false;

    /// <summary>Writes this process's share of <paramref name="checkpoint"/> beside <paramref name="path"/>; every process calls it, before rank 0 writes the file.</summary>
    internal virtual void WriteShards(Checkpoint checkpoint, string path) { }

    /// <summary>Called after a checkpoint's state was loaded into <paramref name="optimizers"/>.</summary>
    internal virtual void OptimizerStateLoaded(IEnumerable<optim.Optimizer> optimizers) { }

    /// <summary>Called when a trainer's stage ends, successfully or not, after its checkpoints are on disk.</summary>
    public virtual void Teardown() { }

    /// <summary>Sets the accelerator, devices and precision (Lightning's accelerator connector does this), once: a strategy serves one trainer or Fabric.</summary>
    internal void Connect(Accelerator accelerator, IReadOnlyList<Device> devices, Devices requested, int numNodes, PrecisionPlugin precision,
        string memoryFormat = MemoryLayout.Contiguous, bool convertModuleLayout = true)
    {
        if (_accelerator is not null)
            throw new InvalidOperationException(
                $"This {GetType().Name} instance already serves another Trainer or Fabric; give each its own (TrainerOptions.Strategy = new {GetType().Name}(...)).");
        precision.Attach();
        (_accelerator, _devices, RequestedDevices, NumNodes, _precision) = (accelerator, devices, requested, numNodes, precision);
        try
        {
            CheckDevices();
            SetupEnvironment();
        }
        catch
        {
            // Refused: both stay free for a corrected setting.
            (_accelerator, _precision) = (null, null);
            precision.Attach(false);
            throw;
        }
        MemoryFormat = memoryFormat;
        _convertsModuleLayout = convertModuleLayout && memoryFormat != MemoryLayout.Contiguous;
        _transfersBatches = RootDevice.type != DeviceType.CPU || precision.Dtype is not null || memoryFormat != MemoryLayout.Contiguous;
    }

    /// <summary>Checkpoints are written in the background from now until <see cref="EndStage"/>.</summary>
    internal void BeginStage() => _inStage = true;

    /// <summary>Checkpoints are written at once from now on; ones queued during the stage stay queued until <see cref="FlushCheckpoints"/>.</summary>
    internal void EndStage() => _inStage = false;

    /// <summary>Waits until every checkpoint asked for is on disk.</summary>
    internal void FlushCheckpoints() => _checkpoints.Flush();

    private InvalidOperationException NotConnected() => new(
        $"{GetType().Name} is not connected to an accelerator yet: pass it as TrainerOptions.Strategy (or FabricOptions.Strategy) and use it once the trainer is built.");
}
