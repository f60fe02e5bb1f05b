using Microsoft.Extensions.Logging;
using Microsoft.ML.OnnxRuntime;

namespace Lightning.Serving;

/// <summary>
/// One loaded generation of a served model: its ONNX Runtime session, signature and execution provider. Each run holds
/// a lease, so a generation replaced by a reload disposes its session once its last run is over.
/// </summary>
internal sealed class LoadedModel : ModelGeneration
{
    public const string CpuProvider = "CPUExecutionProvider";
    public const string CudaProvider = "CUDAExecutionProvider";

    private readonly InferenceSession _session;
    /// <summary>For runs nothing can cancel: one instance, shared by concurrent runs.</summary>
    private readonly RunOptions _runOptions = new();
    /// <summary>
    /// For runs a caller can cancel: each needs its own instance, since setting <see cref="RunOptions.Terminate"/> stops
    /// every run that uses it. Kept for reuse, because creating one is a native allocation.
    /// </summary>
    private readonly System.Collections.Concurrent.ConcurrentBag<RunOptions> _cancellableRunOptions = [];
    private readonly string[] _outputNames;
    private readonly string[] _inputNames;
    /// <summary>Named symbolic dims over all inputs: with one or none, no two can disagree.</summary>
    private readonly int _namedDims;
    /// <summary>
    /// Per output, its dims after dim 0 when ONNX Runtime can write it straight into an array sized here: the model
    /// shares one named batch dim over all inputs and outputs (so an output has as many rows as the inputs) and the
    /// output's other dims are fixed numbers, of a type other than STRING. Null when any output is not so.
    /// </summary>
    private readonly long[][]? _presizedOutputs;

    private LoadedModel(string name, InferenceSession session, string provider, long generation, bool? dynamicBatching)
    {
        Name = name;
        _session = session;
        ExecutionProvider = provider;
        Generation = generation;
        Inputs = [.. session.InputMetadata.Select(p => Spec(name, "input", p.Key, p.Value))];
        Outputs = [.. session.OutputMetadata.Select(p => Spec(name, "output", p.Key, p.Value))];
        _outputNames = [.. Outputs.Select(o => o.Name)];
        _inputNames = [.. Inputs.Select(i => i.Name)];
        _namedDims = Inputs.Sum(i => i.DimNames.Count(n => n.Length > 0));
        bool sharesBatch = SharesBatchDimension(session);
        Batchable = dynamicBatching ?? sharesBatch;
        if (sharesBatch && Outputs.All(o => o.ElementType != Microsoft.ML.OnnxRuntime.Tensors.TensorElementType.String && o.Shape.Skip(1).All(d => d >= 0)))
            _presizedOutputs = [.. Outputs.Select(o => o.Shape[1..])];
        if (dynamicBatching == true && Inputs.Concat(Outputs).FirstOrDefault(s => s.Shape.Length == 0 || s.Shape[0] >= 0) is { } fixedDim)
            throw new NotSupportedException(
                $"Model '{name}' has {nameof(OnnxModelOptions.DynamicBatching)} = true, but '{fixedDim.Name}' has shape {TensorTypes.Format(fixedDim.Shape)}; " +
                "merging requests needs a variable dim 0 on every input and output.");
    }

    /// <summary>
    /// True when every input and output has a symbolic dim 0 and all of them carry the same non-empty name: by ONNX's
    /// rule a shared dim_param is one size across the graph, which says the rows are independent. A dim 0 that is merely
    /// free (unnamed, or named differently per tensor) may be a sequence or anything else, so those models are not merged.
    /// </summary>
    private static bool SharesBatchDimension(InferenceSession session)
    {
        string? batch = null;
        foreach (var meta in session.InputMetadata.Values.Concat(session.OutputMetadata.Values))
        {
            if (meta.Dimensions.Length == 0 || meta.Dimensions[0] >= 0) return false;
            var name = meta.SymbolicDimensions.Length > 0 ? meta.SymbolicDimensions[0] : "";
            if (string.IsNullOrEmpty(name) || (batch is not null && batch != name)) return false;
            batch = name;
        }
        return batch is not null;
    }

    public string Name { get; }

    /// <summary>The provider the session runs on (<c>CUDAExecutionProvider</c> or <c>CPUExecutionProvider</c>).</summary>
    public string ExecutionProvider { get; }

    /// <summary>1 for the model loaded at start, +1 per successful reload.</summary>
    public long Generation { get; }

    public IReadOnlyList<TensorSpec> Inputs { get; }

    public IReadOnlyList<TensorSpec> Outputs { get; }

    /// <summary>True when requests can be merged along dim 0.</summary>
    public bool Batchable { get; }

    /// <summary>Loads a model from its bytes; a CUDA failure falls back to the CPU (with a warning) or throws, per the options.</summary>
    public static LoadedModel Load(string name, byte[] bytes, OnnxModelOptions options, ILogger logger, long generation)
    {
        InferenceSession? session = null;
        string provider = CpuProvider;
        if (options.ExecutionProvider == OnnxExecutionProvider.Cuda)
        {
            try
            {
                using var cudaOptions = CreateOptions(options);
                cudaOptions.AppendExecutionProvider_CUDA(options.CudaDeviceId);
                session = new InferenceSession(bytes, cudaOptions);
                provider = CudaProvider;
            }
            catch (Exception ex) when (ex is OnnxRuntimeException or DllNotFoundException or EntryPointNotFoundException or BadImageFormatException)
            {
                var why = $"ONNX Runtime could not create the CUDA execution provider on device {options.CudaDeviceId}: {ex.Message}";
                // The CPU package lists no CUDA provider at all; the GPU package lists it even when CUDA or cuDNN cannot load.
                var fix = OrtEnv.Instance().GetAvailableProviders().Contains(CudaProvider)
                    ? "Check that CUDA 12 and cuDNN 9 are installed and the device id exists"
                    : "This build has the CPU-only ONNX Runtime (Microsoft.ML.OnnxRuntime); build with -p:OnnxRuntimeBackend=gpu for Microsoft.ML.OnnxRuntime.Gpu";
                if (!options.AllowCpuFallback)
                    throw new InvalidOperationException(
                        $"Model '{name}' asks for {nameof(OnnxExecutionProvider.Cuda)} with {nameof(OnnxModelOptions.AllowCpuFallback)} = false, but {why}. " +
                        $"{fix}, or allow the CPU fallback.", ex);
                why += $". {fix}";
                logger.LogWarning("Model '{Model}' asked for CUDA, but {Why}; serving it on the CPU instead.", name, why);
            }
        }
        if (session is null)
        {
            using var cpuOptions = CreateOptions(options);
            session = new InferenceSession(bytes, cpuOptions);
        }
        try
        {
            return new LoadedModel(name, session, provider, generation, options.DynamicBatching);
        }
        catch
        {
            session.Dispose();
            throw;
        }
    }

    private static SessionOptions CreateOptions(OnnxModelOptions options) => new()
    {
        IntraOpNumThreads = options.IntraOpNumThreads,
        LogSeverityLevel = OrtLoggingLevel.ORT_LOGGING_LEVEL_ERROR,
    };

    private static TensorSpec Spec(string model, string kind, string name, NodeMetadata meta)
    {
        if (!meta.IsTensor)
            throw new NotSupportedException($"Model '{model}': {kind} '{name}' is a {meta.OnnxValueType}; only tensor {kind}s are served.");
        if (!TensorTypes.IsSupported(meta.ElementDataType))
            throw new NotSupportedException(
                $"Model '{model}': {kind} '{name}' has element type {TensorTypes.ToV2(meta.ElementDataType)}; the supported datatypes are [{string.Join(", ", TensorTypes.SupportedDatatypes)}].");
        var names = new string[meta.Dimensions.Length];
        for (int d = 0; d < names.Length; d++)
            names[d] = meta.Dimensions[d] < 0 && d < meta.SymbolicDimensions.Length ? meta.SymbolicDimensions[d] ?? "" : "";
        return new TensorSpec(name, meta.ElementDataType, [.. meta.Dimensions.Select(d => (long)d)], names);
    }

    /// <summary>
    /// Checks a request against the signature: every input once, datatypes and shapes, one batch size on batchable
    /// models, requested outputs. Returns the inputs in graph order, the rows (dim 0) and the key of the non-batch dims.
    /// </summary>
    /// <exception cref="InferenceRequestException">The message names the input, the expected and the received shape/type.</exception>
    public (InferenceTensor[] Ordered, long Rows, string Key) Validate(IReadOnlyList<InferenceTensor> inputs, IReadOnlyList<string>? outputs, int maxBatchSize)
    {
        // The usual request names the inputs in graph order: then no lookup is needed (and no name can repeat).
        bool inOrder = inputs.Count == Inputs.Count;
        for (int i = 0; inOrder && i < inputs.Count; i++) inOrder = inputs[i].Name == Inputs[i].Name;
        var byName = inOrder ? null : new Dictionary<string, InferenceTensor>(StringComparer.Ordinal);
        foreach (var input in inOrder ? [] : inputs)
        {
            if (!byName!.TryAdd(input.Name, input))
                throw new InferenceRequestException($"input '{input.Name}' appears more than once in the request for model '{Name}'.");
            if (Inputs.All(s => s.Name != input.Name))
                throw new InferenceRequestException(
                    $"unexpected input '{input.Name}' for model '{Name}'; its inputs are [{string.Join(", ", Inputs.Select(s => $"'{s.Name}'"))}].");
        }
        List<string> missing = inOrder ? [] : [.. Inputs.Where(s => !byName!.ContainsKey(s.Name)).Select(s => $"'{s.Name}'")];
        if (missing.Count > 0)
            throw new InferenceRequestException(
                $"expected {Inputs.Count} inputs but got {inputs.Count} inputs for model '{Name}'. Got input(s) [{string.Join(", ", inputs.Select(i => $"'{i.Name}'"))}], " +
                $"but missing required input(s) [{string.Join(", ", missing)}]. Please provide all required input(s).");

        var ordered = new InferenceTensor[Inputs.Count];
        // ONNX: one dim_param name is one size across the graph, so inputs that disagree cannot run (ONNX Runtime
        // would fail inside a kernel); said here, naming both inputs.
        Dictionary<string, (long Size, string Input, int Dim)>? named = null;
        long rows = 1;
        string? rowsFrom = null;
        var key = Batchable ? new System.Text.StringBuilder() : null;
        for (int i = 0; i < Inputs.Count; i++)
        {
            var spec = Inputs[i];
            var input = inOrder ? inputs[i] : byName![spec.Name];
            if (input.ElementType != spec.ElementType)
                throw new InferenceRequestException(
                    $"input '{spec.Name}' of model '{Name}' expects datatype {spec.Datatype}, but the request has {input.Datatype}.");
            bool fits = input.Shape.Length == spec.Shape.Length;
            for (int d = 0; fits && d < spec.Shape.Length; d++)
                fits = spec.Shape[d] < 0 || spec.Shape[d] == input.Shape[d];
            if (!fits)
                throw new InferenceRequestException(
                    $"input '{spec.Name}' of model '{Name}' expects shape {TensorTypes.Format(spec.Shape)} (-1 = any size), but the request has shape {TensorTypes.Format(input.Shape)}.");
            for (int d = 0; _namedDims > 1 && d < spec.DimNames.Length; d++)
            {
                if (spec.DimNames[d].Length == 0) continue;
                named ??= new Dictionary<string, (long, string, int)>(StringComparer.Ordinal);
                if (!named.TryGetValue(spec.DimNames[d], out var first))
                    named[spec.DimNames[d]] = (input.Shape[d], spec.Name, d);
                else if (first.Size != input.Shape[d])
                    throw new InferenceRequestException(
                        $"input '{spec.Name}' of model '{Name}' has dim {d} ('{spec.DimNames[d]}') = {input.Shape[d]}, but input '{first.Input}' has dim {first.Dim} " +
                        $"('{spec.DimNames[d]}') = {first.Size}; the model names both dims alike, so they must be equal.");
            }
            if (Batchable)
            {
                var n = input.Shape[0];
                if (n < 1)
                    throw new InferenceRequestException($"input '{spec.Name}' of model '{Name}' has batch size {n} (dim 0 of shape {TensorTypes.Format(input.Shape)}); it must be at least 1.");
                if (n > maxBatchSize)
                    throw new InferenceRequestException(
                        $"input '{spec.Name}' of model '{Name}' has batch size {n} (dim 0 of shape {TensorTypes.Format(input.Shape)}), over the model's max batch size {maxBatchSize}.");
                if (rowsFrom is not null && n != rows)
                    throw new InferenceRequestException(
                        $"input '{spec.Name}' of model '{Name}' has batch size {n}, but input '{rowsFrom}' has {rows}; every input needs the same dim 0.");
                rows = n;
                rowsFrom = spec.Name;
                for (int d = 1; d < input.Shape.Length; d++) key!.Append(input.Shape[d]).Append(',');
                key!.Append(';');
            }
            ordered[i] = input;
        }
        if (outputs is not null)
        {
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var output in outputs)
            {
                if (!seen.Add(output))
                    throw new InferenceRequestException($"output '{output}' already exists in request for model '{Name}'.");
                if (Outputs.All(s => s.Name != output))
                    throw new InferenceRequestException(
                        $"unexpected output '{output}' for model '{Name}'; its outputs are [{string.Join(", ", Outputs.Select(s => $"'{s.Name}'"))}].");
            }
        }
        return (ordered, rows, key?.ToString() ?? "");
    }

    /// <summary>Runs the session on inputs in graph order and returns every output in graph order.</summary>
    /// <param name="ordered">The inputs, in graph order.</param>
    /// <param name="cancellationToken">Stops the run at ONNX Runtime's next node when it fires (a timeout, a client gone).</param>
    /// <exception cref="OperationCanceledException">The token fired and ONNX Runtime stopped the run.</exception>
    public InferenceTensor[] Run(IReadOnlyList<InferenceTensor> ordered, CancellationToken cancellationToken = default)
    {
        if (!cancellationToken.CanBeCanceled) return Run(ordered, _runOptions);
        cancellationToken.ThrowIfCancellationRequested();
        if (!_cancellableRunOptions.TryTake(out var options)) options = new RunOptions();
        bool reusable = true;
        try
        {
            using (cancellationToken.UnsafeRegister(static o => ((RunOptions)o!).Terminate = true, options))
            {
                try
                {
                    return Run(ordered, options);
                }
                catch (OnnxRuntimeException) when (cancellationToken.IsCancellationRequested)
                {
                    throw new OperationCanceledException($"model '{Name}': the run was stopped because its request was cancelled or timed out.", cancellationToken);
                }
            }
        }
        finally
        {
            // Disposing the registration waited for a callback in flight, so the flag is settled here.
            if (options.Terminate)
            {
                try
                {
                    options.Terminate = false;
                }
                catch (OnnxRuntimeException)
                {
                    reusable = false;
                }
            }
            // Added before the run's lease is released, so the disposal of this generation (after its last run) finds it.
            if (reusable) _cancellableRunOptions.Add(options);
            else options.Dispose();
        }
    }

    private InferenceTensor[] Run(IReadOnlyList<InferenceTensor> ordered, RunOptions runOptions)
    {
        if (_presizedOutputs is { } tails && ordered.Count > 0 && ordered[0].Shape is [> 0, ..]) return RunPresized(ordered, tails, runOptions);
        var values = new List<OrtValue>(ordered.Count);
        try
        {
            foreach (var input in ordered) values.Add(TensorTypes.ToOrtValue(input));
            using var results = _session.Run(runOptions, _inputNames, values, _outputNames);
            var outputs = new InferenceTensor[_outputNames.Length];
            int i = 0;
            foreach (var value in results)
            {
                outputs[i] = TensorTypes.FromOrtValue(_outputNames[i], value);
                i++;
            }
            return outputs;
        }
        finally
        {
            foreach (var value in values) value.Dispose();
        }
    }

    /// <summary>
    /// Runs with the outputs allocated here as managed arrays that ONNX Runtime writes into: no native output buffer,
    /// no per-output type and shape queries, and no copy out (about 1 µs of a 11 µs run of the benchmark's MLP).
    /// </summary>
    private InferenceTensor[] RunPresized(IReadOnlyList<InferenceTensor> ordered, long[][] tails, RunOptions runOptions)
    {
        long rows = ordered[0].Shape[0];
        var outputs = new InferenceTensor[tails.Length];
        var values = new OrtValue[ordered.Count + tails.Length];
        int made = 0;
        try
        {
            for (int i = 0; i < ordered.Count; i++, made++) values[i] = TensorTypes.ToOrtValue(ordered[i]);
            for (int o = 0; o < tails.Length; o++, made++)
            {
                var shape = new long[tails[o].Length + 1];
                shape[0] = rows;
                long count = rows;
                for (int d = 0; d < tails[o].Length; d++) count *= shape[d + 1] = tails[o][d];
                var spec = Outputs[o];
                outputs[o] = new InferenceTensor(spec.Name, spec.ElementType, shape, TensorTypes.Allocate(spec.ElementType, count));
                values[ordered.Count + o] = TensorTypes.ToOrtValue(outputs[o]);
            }
            _session.Run(runOptions, _inputNames, new ArraySegment<OrtValue>(values, 0, ordered.Count), _outputNames,
                new ArraySegment<OrtValue>(values, ordered.Count, tails.Length));
            return outputs;
        }
        finally
        {
            for (int i = 0; i < made; i++) values[i].Dispose();
        }
    }

    protected override void DisposeResources()
    {
        _session.Dispose();
        _runOptions.Dispose();
        while (_cancellableRunOptions.TryTake(out var options)) options.Dispose();
    }
}
