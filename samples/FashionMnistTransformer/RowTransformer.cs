using Lightning;
using Lightning.Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace FashionMnistTransformer;

/// <summary>
/// A small transformer that reads a 28 × 28 image as a sequence of 28 rows of 28 pixels: each row is embedded linearly,
/// a learned position embedding is added, a TransformerEncoder mixes the rows, and the mean over the rows goes through a
/// linear head to the 10 class scores. It takes the pipeline's flat <c>Features</c> [batch, 784] and splits them into
/// rows itself, so the exported ONNX graph reads the ML.NET column as it is.
/// </summary>
/// <remarks>
/// TorchSharp's transformer modules are sequence-first ([rows, batch, width]); the exporter's converter for
/// <see cref="TransformerEncoder"/> writes the same attention into the ONNX graph.
/// </remarks>
internal sealed class RowTransformer : LightningModule<IList<Tensor>>, IOnnxExportable
{
    public const int Side = 28;

    private readonly Linear rowEmbedding;
    private readonly Parameter position;
    private readonly TransformerEncoder encoder;
    private readonly Linear head;
    private readonly double maxLr;
    private readonly long totalSteps;

    /// <param name="width">The embedding width (d_model).</param>
    /// <param name="heads">Attention heads.</param>
    /// <param name="feedForward">The width of each layer's feed-forward block.</param>
    /// <param name="layers">Encoder layers.</param>
    /// <param name="maxLr">The peak learning rate of the one-cycle schedule.</param>
    /// <param name="totalSteps">Optimizer steps of the whole fit, for the schedule.</param>
    public RowTransformer(int width, int heads, int feedForward, int layers, double maxLr, long totalSteps) : base(nameof(RowTransformer))
    {
        rowEmbedding = nn.Linear(Side, width);
        position = nn.Parameter(randn(Side, 1, width) * 0.02);
        encoder = nn.TransformerEncoder(nn.TransformerEncoderLayer(width, heads, feedForward, dropout: 0.0), layers);
        head = nn.Linear(width, 10);
        this.maxLr = maxLr;
        this.totalSteps = totalSteps;
        RegisterComponents();
    }

    /// <summary>Class scores [batch, 10] for flat images [batch, 784] (what the exported ONNX graph computes).</summary>
    public Tensor forward(Tensor features)
    {
        using var scope = NewDisposeScope();
        // [batch, 784] -> rows first [28, batch, 28] -> embedded [28, batch, width] + position.
        var rows = features.reshape(-1, Side, Side).transpose(0, 1);
        var tokens = rowEmbedding.forward(rows) + position;
        var encoded = encoder.forward(tokens, null!, null!);
        return head.forward(encoded.mean([0])).MoveToOuterDisposeScope();
    }

    public IReadOnlyList<OnnxValue> ExportOnnx(OnnxGraph graph, IReadOnlyList<OnnxValue> inputs)
    {
        var rows = graph.Transpose(graph.Reshape(inputs[0], 0, Side, Side), 1, 0, 2);
        var tokens = graph.Add(graph.Call(rowEmbedding, rows), graph.Initializer(position, "position"));
        var encoded = graph.Call(encoder, tokens)[0];
        return [graph.Call(head, graph.Mean(encoded, [0]))];
    }

    public override Tensor TrainingStep(IList<Tensor> batch, int batchIdx)
    {
        var loss = nn.functional.cross_entropy(forward(batch[0]), batch[1]);
        Log("train_loss", loss);
        return loss;
    }

    public override OptimizerConfiguration ConfigureOptimizers()
    {
        var optimizer = optim.AdamW(parameters(), maxLr, weight_decay: 1e-4);
        // A short warm-up (attention is unstable at a high rate from random weights), then a long anneal.
        var schedule = optim.lr_scheduler.OneCycleLR(optimizer, maxLr, total_steps: (int)totalSteps, pct_start: 0.15);
        return new OptimizerConfiguration(optimizer, new LrSchedulerConfig(schedule, SchedulerInterval.Step));
    }
}
