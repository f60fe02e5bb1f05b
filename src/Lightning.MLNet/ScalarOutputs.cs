using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Transforms;

namespace Lightning.MLNet;

/// <summary>
/// Turns the one-slot vector outputs of OnnxTransformer (which cannot make scalar columns) into the scalar columns ML.NET's
/// own trainers make, so the catalogs' <c>Evaluate</c>, <c>CrossValidate</c> and <c>PermutationFeatureImportance</c> take
/// them as they are: regression <c>Score</c> (Single), binary <c>Score</c> and <c>Probability</c> (Single) and
/// <c>PredictedLabel</c> (Boolean), multiclass <c>PredictedLabel</c> (Int64 here; the key mapping after it makes the key).
/// </summary>
/// <remarks>
/// ML.NET has no built-in transform that makes a scalar of a vector and saves with the model, so this is a
/// <c>CustomMapping</c>: a saved model that holds it loads in a context that knows this assembly
/// (<c>mlContext.ComponentCatalog.RegisterAssembly(typeof(LightningCatalog).Assembly)</c>).
/// <see cref="LightningTransformer.PortableModel"/> is the same model without it, for a process with only Microsoft.ML and
/// Microsoft.ML.OnnxTransformer.
/// </remarks>
internal static class ScalarOutputs
{
    public const string RegressionContract = "Lightning.MLNet.ScalarOutputs.Regression";
    public const string BinaryContract = "Lightning.MLNet.ScalarOutputs.Binary";
    public const string MulticlassContract = "Lightning.MLNet.ScalarOutputs.Multiclass";

    /// <summary>The mapping for <paramref name="kind"/>'s outputs.</summary>
    public static IEstimator<ITransformer> Estimator(MLContext mlContext, HeadKind kind) => kind switch
    {
        HeadKind.Regression => mlContext.Transforms.CustomMapping(new RegressionScalars().GetMapping(), RegressionContract),
        HeadKind.Binary => mlContext.Transforms.CustomMapping(new BinaryScalars().GetMapping(), BinaryContract),
        HeadKind.Multiclass => mlContext.Transforms.CustomMapping(new MulticlassScalars().GetMapping(), MulticlassContract),
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "Only trainer outputs are made scalar."),
    };

    internal sealed class ScoreSlot
    {
        [VectorType(1)]
        public float[] Score { get; set; } = [];
    }

    internal sealed class ScoreValue
    {
        public float Score { get; set; }
    }

    internal sealed class BinarySlots
    {
        [VectorType(1)]
        public float[] Score { get; set; } = [];

        [VectorType(1)]
        public float[] Probability { get; set; } = [];

        [VectorType(1)]
        public bool[] PredictedLabel { get; set; } = [];
    }

    internal sealed class BinaryValues
    {
        public float Score { get; set; }

        public float Probability { get; set; }

        public bool PredictedLabel { get; set; }
    }

    internal sealed class LabelSlot
    {
        [VectorType(1)]
        public long[] PredictedLabel { get; set; } = [];
    }

    internal sealed class LabelValue
    {
        public long PredictedLabel { get; set; }
    }

    [CustomMappingFactoryAttribute(RegressionContract)]
    internal sealed class RegressionScalars : CustomMappingFactory<ScoreSlot, ScoreValue>
    {
        public override Action<ScoreSlot, ScoreValue> GetMapping() => (slot, value) => value.Score = slot.Score[0];
    }

    [CustomMappingFactoryAttribute(BinaryContract)]
    internal sealed class BinaryScalars : CustomMappingFactory<BinarySlots, BinaryValues>
    {
        public override Action<BinarySlots, BinaryValues> GetMapping() => (slots, values) =>
        {
            values.Score = slots.Score[0];
            values.Probability = slots.Probability[0];
            values.PredictedLabel = slots.PredictedLabel[0];
        };
    }

    [CustomMappingFactoryAttribute(MulticlassContract)]
    internal sealed class MulticlassScalars : CustomMappingFactory<LabelSlot, LabelValue>
    {
        public override Action<LabelSlot, LabelValue> GetMapping() => (slot, value) => value.PredictedLabel = slot.PredictedLabel[0];
    }
}
