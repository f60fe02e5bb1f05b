using TorchSharp;
using static TorchSharp.torch;

namespace Lightning;

/// <summary>What <see cref="LightningModule.ConfigureOptimizers"/> returns; a TorchSharp optimizer converts to it implicitly.</summary>
public sealed class OptimizerConfiguration
{
    /// <summary>Trains with <paramref name="optimizer"/>.</summary>
    public OptimizerConfiguration(optim.Optimizer optimizer)
    {
        ArgumentNullException.ThrowIfNull(optimizer);
        Optimizers = [optimizer];
    }

    /// <summary>The optimizers, in the order the module returned them.</summary>
    public IReadOnlyList<optim.Optimizer> Optimizers { get; }

    /// <summary>Trains with one optimizer.</summary>
    public static implicit operator OptimizerConfiguration(optim.Optimizer optimizer) => new(optimizer);
}
