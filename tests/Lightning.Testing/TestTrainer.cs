using Lightning.Callbacks;
using TorchSharp;
using Xunit;
using static TorchSharp.torch;

namespace Lightning.Testing;

/// <summary>What most trainer tests share: quiet options in a temporary folder, weight snapshots and tensor comparisons.</summary>
public static class TestTrainer
{
    /// <summary>Options for a run in <paramref name="root"/> without progress bar, model summary, default checkpoints or loggers.</summary>
    public static TrainerOptions Quiet(TempDirectory root, params Callback[] callbacks) => new()
    {
        DefaultRootDir = root.Path, EnableProgressBar = false, EnableModelSummary = false, EnableCheckpointing = false, Loggers = [],
        Callbacks = callbacks,
    };

    /// <summary>A detached copy of every tensor of the module's state, by name.</summary>
    public static Dictionary<string, Tensor> Snapshot(nn.Module module) =>
        module.state_dict().ToDictionary(kv => kv.Key, kv => kv.Value.detach().clone().DetachFromDisposeScope());

    /// <summary>True when both tensors have the same shape and equal elements.</summary>
    public static bool Identical(Tensor a, Tensor b) => a.shape.SequenceEqual(b.shape) && a.eq(b).all().item<bool>();

    /// <summary>Asserts <c>allclose</c> (relative 1e-5, absolute 1e-6 by default), printing both tensors when they differ.</summary>
    public static void AssertClose(Tensor expected, Tensor actual, string name, double rtol = 1e-5, double atol = 1e-6) =>
        Assert.True(expected.allclose(actual, rtol, atol), $"{name}: expected {expected.ToString(julia)}, got {actual.ToString(julia)}");
}
