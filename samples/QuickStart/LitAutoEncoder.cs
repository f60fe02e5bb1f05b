using Lightning;
using TorchSharp;
using static TorchSharp.torch;

namespace QuickStart;

/// <summary>The autoencoder of Lightning's "learn Lightning in 15 minutes", batch = [images, labels].</summary>
public sealed class LitAutoEncoder : LightningModule<IList<Tensor>>
{
    private readonly nn.Module<Tensor, Tensor> encoder;
    private readonly nn.Module<Tensor, Tensor> decoder;

    public LitAutoEncoder(nn.Module<Tensor, Tensor> encoder, nn.Module<Tensor, Tensor> decoder) : base(nameof(LitAutoEncoder))
    {
        this.encoder = encoder;
        this.decoder = decoder;
        RegisterComponents();
    }

    public nn.Module<Tensor, Tensor> Encoder => encoder;

    public override Tensor TrainingStep(IList<Tensor> batch, int batchIdx)
    {
        // training_step defines the train loop; it is independent of forward
        var x = batch[0].view(batch[0].size(0), -1);
        var z = encoder.forward(x);
        var xHat = decoder.forward(z);
        var loss = nn.functional.mse_loss(xHat, x);
        Log("train_loss", loss);
        return loss;
    }

    public override OptimizerConfiguration ConfigureOptimizers() => optim.Adam(parameters(), lr: 1e-3);
}
