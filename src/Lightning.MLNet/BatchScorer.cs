using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Lightning.MLNet;

/// <summary>
/// The batched graph (<see cref="PredictionHead"/> with <c>batched: true</c>) in an ONNX Runtime session: one
/// <see cref="Run"/> scores a block of rows. Thread-safe, as ONNX Runtime's <c>Run</c> is.
/// </summary>
internal sealed class BatchScorer : IDisposable
{
    private readonly InferenceSession _session;
    private readonly string[] _inputNames;
    private readonly string[] _outputNames;
    private readonly int[] _outputWidths;
    private long _runs;

    /// <param name="model">The batched ONNX model: inputs [N, width] float32 or int64, one per input column (two for a variable-length one, values and mask); outputs [N, width] float32, int64 or bool.</param>
    /// <param name="inputs">The input columns, in the graph's input order.</param>
    public BatchScorer(byte[] model, IReadOnlyList<InputColumn> inputs)
    {
        using var options = new SessionOptions();
        // Between runs the pipeline reads the next rows on this thread; spinning workers would take its core.
        options.AddSessionConfigEntry("session.intra_op.allow_spinning", "0");
        _session = new InferenceSession(model, options);
        Inputs = inputs;
        _inputNames = [.. _session.InputNames];
        _outputNames = [.. _session.OutputNames];
        _outputWidths = [.. _outputNames.Select(name => checked((int)_session.OutputMetadata[name].Dimensions.Skip(1).Aggregate(1L, (a, d) => a * d)))];
        OutputTypes = [.. _outputNames.Select(name => _session.OutputMetadata[name].ElementDataType)];
    }

    public IReadOnlyList<InputColumn> Inputs { get; }

    public IReadOnlyList<string> OutputNames => _outputNames;

    /// <summary>Values per row of each output.</summary>
    public IReadOnlyList<int> OutputWidths => _outputWidths;

    public IReadOnlyList<TensorElementType> OutputTypes { get; }

    /// <summary>How many times <see cref="Run"/> ran the session (for tests that check rows were scored in blocks).</summary>
    public long Runs => Interlocked.Read(ref _runs);

    /// <summary>
    /// Scores the first <paramref name="rows"/> rows the readers hold (one per input, in order) and copies each output
    /// into <paramref name="outputs"/> (float[], long[] or bool[], at least rows × width long).
    /// </summary>
    public void Run(IReadOnlyList<VectorColumnReader> readers, int rows, Array[] outputs)
    {
        var inputs = readers.SelectMany(r => r.ToOrtValues(rows)).ToArray();
        try
        {
            RunSession(inputs, rows, outputs);
        }
        finally
        {
            foreach (var input in inputs) input.Dispose();
        }
    }

    private void RunSession(OrtValue[] inputs, int rows, Array[] outputs)
    {
        using var runOptions = new RunOptions();
        using var results = _session.Run(runOptions, _inputNames, inputs, _outputNames);
        Interlocked.Increment(ref _runs);
        for (int i = 0; i < _outputNames.Length; i++)
        {
            int count = rows * _outputWidths[i];
            switch (outputs[i])
            {
                case float[] values:
                    results[i].GetTensorDataAsSpan<float>()[..count].CopyTo(values);
                    break;
                case long[] values:
                    results[i].GetTensorDataAsSpan<long>()[..count].CopyTo(values);
                    break;
                case bool[] values:
                    results[i].GetTensorDataAsSpan<bool>()[..count].CopyTo(values);
                    break;
                default:
                    throw new InvalidOperationException($"Output '{_outputNames[i]}' is {OutputTypes[i]}; the scorer copies float, int64 and bool outputs.");
            }
        }
    }

    public void Dispose() => _session.Dispose();
}
