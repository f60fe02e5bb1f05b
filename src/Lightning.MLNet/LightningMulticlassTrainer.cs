using Microsoft.ML;
using static TorchSharp.torch;

namespace Lightning.MLNet;

/// <summary>
/// Trains a <see cref="LightningModule{TBatch}"/> as an ML.NET multiclass classifier: the module maps features [batch, F] to class scores [batch, K] (logits); its training batches are [features float32 [b, F], labels int64 [b] (key − 1)]. The model's <c>Score</c> holds the softmax of those scores and <c>PredictedLabel</c> the key of the largest.
/// Made by <see cref="LightningCatalog"/>; <c>Fit</c> trains with the Core <see cref="Trainer"/>.
/// </summary>
/// <remarks>
/// <list type="table">
/// <item><term>Does this estimator need to look at the data to train its parameters?</term><description>Yes</description></item>
/// <item><term>Input columns</term><description>The feature column (known-size vector of Single) and the label column.</description></item>
/// <item><term>Output columns</term><description><c>Score</c> holds the softmax of those scores and <c>PredictedLabel</c> the key of the largest.</description></item>
/// <item><term>Exportable to ONNX</term><description>The model is ONNX (scored by ML.NET's OnnxTransformer).</description></item>
/// </list>
/// </remarks>
public sealed class LightningMulticlassTrainer : LightningTrainerBase
{
    internal LightningMulticlassTrainer(Func<LightningModule<IList<Tensor>>> moduleFactory, LightningTrainerOptions options, MLContextLink context)
        : base(moduleFactory, options, context, HeadKind.Multiclass)
    {
    }
}
