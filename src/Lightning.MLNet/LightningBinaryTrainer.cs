using Microsoft.ML;
using static TorchSharp.torch;

namespace Lightning.MLNet;

/// <summary>
/// Trains a <see cref="LightningModule{TBatch}"/> as an ML.NET binary classifier: the module maps features [batch, F] to one
/// logit per row ([batch] or [batch, 1]); its training batches are [features float32 [b, F], labels float32 [b] (1 for
/// true, 0 for false)], e.g. for <c>binary_cross_entropy_with_logits</c>. The model's <c>Score</c> holds the logit,
/// <c>Probability</c> its sigmoid (calibrated as a logistic model's is, when the module trains on the log loss) and
/// <c>PredictedLabel</c> whether the logit is above 0, as <c>mlContext.BinaryClassification.Evaluate</c> takes them.
/// Made by <see cref="LightningCatalog"/>; <c>Fit</c> trains with the Core <see cref="Trainer"/>.
/// </summary>
/// <remarks>
/// <list type="table">
/// <item><term>Does this estimator need to look at the data to train its parameters?</term><description>Yes</description></item>
/// <item><term>Input columns</term><description>The feature column (known-size vector of Single) and the label column (Boolean).</description></item>
/// <item><term>Output columns</term><description><c>Score</c> (Single), <c>Probability</c> (Single) and <c>PredictedLabel</c> (Boolean).</description></item>
/// <item><term>Exportable to ONNX</term><description>The model is ONNX (scored by ML.NET's OnnxTransformer).</description></item>
/// </list>
/// </remarks>
public sealed class LightningBinaryTrainer : LightningTrainerBase
{
    internal LightningBinaryTrainer(Func<LightningModule<IList<Tensor>>> moduleFactory, LightningTrainerOptions options, MLContextLink context)
        : base(moduleFactory, options, context, HeadKind.Binary)
    {
    }
}
