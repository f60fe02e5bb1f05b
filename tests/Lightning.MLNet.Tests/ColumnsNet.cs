using Lightning.Onnx;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lightning.MLNet.Tests;

/// <summary>How <see cref="ColumnsNet"/> reads one input column.</summary>
internal enum ColumnKind
{
    /// <summary>float32 [batch, width] through a linear layer.</summary>
    Dense,
    /// <summary>int64 token ids [batch, length] through an embedding, averaged over the length.</summary>
    Tokens,
    /// <summary>float32 images [batch, 3, S, S] through a 3×3 convolution of 2 channels, flattened, and a linear layer.</summary>
    Image,
    /// <summary>Token ids then their mask (two forward arguments): the embedding averaged over the real (mask 1) tokens.</summary>
    MaskedTokens,
}

/// <summary>
/// A module of several forward arguments: each input column becomes 8 features (see <see cref="ColumnKind"/>), their sum
/// goes through ReLU and a linear head. MSE on one output (regression) or cross entropy over class scores.
/// </summary>
internal sealed class ColumnsNet : LightningModule<IList<Tensor>>, IOnnxExportable
{
    private readonly (ColumnKind Kind, int Size)[] columns;
    private readonly ModuleList<nn.Module<Tensor, Tensor>> encoders = new();
    private readonly nn.Module<Tensor, Tensor> head;
    private readonly bool regression;

    /// <param name="columns">Per column its kind and size: the width (dense), the side (square images) or the vocabulary size (tokens).</param>
    public ColumnsNet((ColumnKind Kind, int Size)[] columns, int outputs, bool regression) : base(nameof(ColumnsNet))
    {
        this.columns = columns;
        foreach (var (kind, size) in columns)
            encoders.Add(kind switch
            {
                ColumnKind.Dense => nn.Linear(size, 8),
                ColumnKind.Image => nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.Linear(2 * (size - 2) * (size - 2), 8)),
                _ => nn.Embedding(size, 8),
            });
        head = nn.Sequential(nn.ReLU(), nn.Linear(8, outputs));
        this.regression = regression;
        RegisterComponents();
    }

    /// <summary>Called with each training batch.</summary>
    public Action<IList<Tensor>>? OnBatch { get; init; }

    /// <summary>The forward arguments a batch starts with (a masked column takes two).</summary>
    public int ArgumentCount => columns.Sum(c => c.Kind == ColumnKind.MaskedTokens ? 2 : 1);

    public Tensor Forward(IList<Tensor> inputs)
    {
        Tensor? sum = null;
        int next = 0;
        for (int i = 0; i < columns.Length; i++)
        {
            var encoded = encoders[i].forward(inputs[next++]);
            if (columns[i].Kind == ColumnKind.Tokens) encoded = encoded.mean([1]);
            else if (columns[i].Kind == ColumnKind.MaskedTokens)
            {
                var mask = inputs[next++].to_type(ScalarType.Float32).unsqueeze(2);
                encoded = (encoded * mask).sum(1) / mask.sum(1);
            }
            sum = sum is null ? encoded : sum + encoded;
        }
        return head.forward(sum!);
    }

    public IReadOnlyList<OnnxValue> ExportOnnx(OnnxGraph graph, IReadOnlyList<OnnxValue> inputs)
    {
        OnnxValue? sum = null;
        int next = 0;
        for (int i = 0; i < columns.Length; i++)
        {
            var encoded = graph.Call(encoders[i], inputs[next++]);
            if (columns[i].Kind == ColumnKind.Tokens) encoded = graph.Mean(encoded, [1]);
            else if (columns[i].Kind == ColumnKind.MaskedTokens)
            {
                var mask = graph.Unsqueeze(graph.Cast(inputs[next++], ScalarType.Float32), 2);
                encoded = graph.Div(graph.Sum(graph.Mul(encoded, mask), [1]), graph.Sum(mask, [1]));
            }
            sum = sum is null ? encoded : graph.Add(sum, encoded);
        }
        return [graph.Call(head, sum!)];
    }

    public override Tensor TrainingStep(IList<Tensor> batch, int batchIdx)
    {
        Assert.Equal(ArgumentCount + 1, batch.Count);
        OnBatch?.Invoke(batch);
        var output = Forward(batch);
        var loss = regression ? nn.functional.mse_loss(output.squeeze(1), batch[^1]) : nn.functional.cross_entropy(output, batch[^1]);
        Log("train_loss", loss);
        return loss;
    }

    public override OptimizerConfiguration ConfigureOptimizers() => optim.Adam(parameters(), 0.01);
}
