using Lightning;
using Lightning.Onnx;
using TorchSharp;
using static TorchSharp.torch;

namespace QuickStartCli;

/// <summary>The quickstart's autoencoder with its sizes and learning rate as constructor arguments, so the CLI sets them.</summary>
public sealed class AutoEncoder : LightningModule<IList<Tensor>>, IOnnxExportable
{
    private readonly nn.Module<Tensor, Tensor> encoder, decoder;
    private readonly double _lr;

    /// <summary>An autoencoder of 28×28 images.</summary>
    /// <param name="hiddenDim">Units of the hidden layer of the encoder and the decoder.</param>
    /// <param name="latentDim">Size of the embedding.</param>
    /// <param name="lr">Adam's learning rate.</param>
    public AutoEncoder(int hiddenDim = 64, int latentDim = 3, double lr = 1e-3) : base(nameof(AutoEncoder))
    {
        encoder = nn.Sequential(nn.Linear(28 * 28, hiddenDim), nn.ReLU(), nn.Linear(hiddenDim, latentDim));
        decoder = nn.Sequential(nn.Linear(latentDim, hiddenDim), nn.ReLU(), nn.Linear(hiddenDim, 28 * 28));
        _lr = lr;
        SaveHyperparameters(new { hiddenDim, latentDim, lr });
        RegisterComponents();
    }

    /// <summary>The embedding of flattened images.</summary>
    public Tensor forward(Tensor x) => encoder.forward(x);

    /// <inheritdoc />
    public IReadOnlyList<OnnxValue> ExportOnnx(OnnxGraph graph, IReadOnlyList<OnnxValue> inputs) => [graph.Call(encoder, inputs[0])];

    /// <inheritdoc />
    public override Tensor TrainingStep(IList<Tensor> batch, int batchIdx)
    {
        var loss = Loss(batch);
        Log("train_loss", loss);
        return loss;
    }

    /// <inheritdoc />
    public override void ValidationStep(IList<Tensor> batch, int batchIdx) => Log("val_loss", Loss(batch));

    /// <inheritdoc />
    public override void TestStep(IList<Tensor> batch, int batchIdx) => Log("test_loss", Loss(batch));

    /// <inheritdoc />
    public override Tensor PredictStep(IList<Tensor> batch, int batchIdx) => forward(batch[0]);

    /// <inheritdoc />
    public override OptimizerConfiguration ConfigureOptimizers() => optim.Adam(parameters(), lr: _lr);

    private Tensor Loss(IList<Tensor> batch)
    {
        var x = batch[0];
        return nn.functional.mse_loss(decoder.forward(encoder.forward(x)), x);
    }
}
