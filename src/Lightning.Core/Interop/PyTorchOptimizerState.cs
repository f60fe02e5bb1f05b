using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lightning.Interop;

/// <summary>
/// Loads a PyTorch optimizer <c>state_dict</c> (<c>{"state": {index: {...}}, "param_groups": [{..., "params": [index, ...]}]}</c>)
/// into a TorchSharp optimizer of the same kind. PyTorch's state dict does not name the optimizer's class, so the kind
/// is told by its keys: Adam and AdamW keep <c>exp_avg</c>/<c>exp_avg_sq</c> and <c>betas</c>, SGD keeps
/// <c>momentum_buffer</c> and <c>momentum</c>. Anything else is left as it is and the reason returned.
/// </summary>
internal static class PyTorchOptimizerState
{
    /// <summary>Loads <paramref name="source"/> into <paramref name="optimizer"/>; returns why it did not, or null when it did.</summary>
    public static string? Load(optim.Optimizer optimizer, Dictionary<object, object?> source)
    {
        var name = optimizer.GetType().Name;
        if (optimizer is not OptimizerHelper helper) return $"optimizer {name} keeps no state that can be set";
        if (source.GetValueOrDefault("param_groups") is not List<object?> groups || source.GetValueOrDefault("state") is not Dictionary<object, object?> state)
            return "the optimizer state has no 'param_groups' list or 'state' dict";
        var group0 = groups.FirstOrDefault() as Dictionary<object, object?> ?? [];
        var pyKind = group0.ContainsKey("betas") ? "Adam or AdamW" : group0.ContainsKey("momentum") && group0.ContainsKey("dampening") ? "SGD" : "another optimizer";
        var matches = optimizer switch
        {
            Adam or AdamW => pyKind == "Adam or AdamW",
            SGD => pyKind == "SGD",
            _ => false,
        };
        if (!matches)
            return $"the checkpoint's optimizer is {pyKind} (by its state's keys) and the module's is {name}; " +
                   "optimizer state is carried over only between Adam, AdamW and SGD of the same kind";

        var target = helper.state_dict();
        if (groups.Count != target.Options.Count)
            return $"the checkpoint's optimizer has {groups.Count} parameter group(s) and the module's {target.Options.Count}";
        // Check everything before changing anything, so a mismatch leaves the optimizer as it was.
        var plan = new List<(OptimizerOptions Options, Dictionary<object, object?> Group, List<(OptimizerState State, Dictionary<object, object?>? Source)> States)>();
        for (int g = 0; g < groups.Count; g++)
        {
            var group = groups[g] as Dictionary<object, object?> ?? [];
            var indices = group.GetValueOrDefault("params") as List<object?> ?? [];
            var targetIndices = target.StateIndexRef[g];
            if (indices.Count != targetIndices.Count)
                return $"parameter group {g} has {indices.Count} parameter(s) in the checkpoint and {targetIndices.Count} in the module";
            var states = new List<(OptimizerState, Dictionary<object, object?>?)>();
            for (int i = 0; i < indices.Count; i++)
            {
                var pyState = state.GetValueOrDefault(indices[i] ?? -1L) as Dictionary<object, object?>;
                var mine = target.State[targetIndices[i]];
                if (pyState is { Count: > 0 } && Mismatch(mine, pyState) is { } why) return $"parameter group {g}, parameter {i}: {why}";
                states.Add((mine, pyState is { Count: > 0 } ? pyState : null));
            }
            plan.Add((target.Options[g], group, states));
        }
        using var noGrad = no_grad();
        foreach (var (options, group, states) in plan)
        {
            SetOptions(options, group);
            foreach (var (mine, pyState) in states)
                if (pyState is not null) SetState(mine, pyState);
        }
        return null;
    }

    private static string? Mismatch(OptimizerState mine, Dictionary<object, object?> py)
    {
        (string Key, Tensor? Mine)[] tensors = mine switch
        {
            Adam.State a => [("exp_avg", a.exp_avg), ("exp_avg_sq", a.exp_avg_sq)],
            AdamW.State a => [("exp_avg", a.exp_avg), ("exp_avg_sq", a.exp_avg_sq)],
            SGD.State s => [("momentum_buffer", s.momentum_buffer)],
            _ => [],
        };
        foreach (var (key, t) in tensors)
        {
            var value = py.GetValueOrDefault(key);
            if (value is null && key == "momentum_buffer") continue;   // SGD without momentum keeps None
            if (value is not Tensor v) return $"its state has no tensor '{key}'";
            if (t is not null && !t.shape.SequenceEqual(v.shape))
                return $"'{key}' has shape {PickleReader.Shape(v.shape)} in the checkpoint and {PickleReader.Shape(t.shape)} in the module";
        }
        return null;
    }

    private static void SetState(OptimizerState mine, Dictionary<object, object?> py)
    {
        switch (mine)
        {
            case Adam.State a:
                a.step = Step(py);
                a.exp_avg.copy_((Tensor)py["exp_avg"]!);
                a.exp_avg_sq.copy_((Tensor)py["exp_avg_sq"]!);
                if (py.GetValueOrDefault("max_exp_avg_sq") is Tensor maxA) a.max_exp_avg_sq = maxA.to(a.exp_avg_sq.dtype, a.exp_avg_sq.device).DetachFromDisposeScope();
                break;
            case AdamW.State a:
                a.step = Step(py);
                a.exp_avg.copy_((Tensor)py["exp_avg"]!);
                a.exp_avg_sq.copy_((Tensor)py["exp_avg_sq"]!);
                if (py.GetValueOrDefault("max_exp_avg_sq") is Tensor maxW) a.max_exp_avg_sq = maxW.to(a.exp_avg_sq.dtype, a.exp_avg_sq.device).DetachFromDisposeScope();
                break;
            case SGD.State s when py.GetValueOrDefault("momentum_buffer") is Tensor buffer:
                if (s.momentum_buffer is null) s.momentum_buffer = buffer.clone().DetachFromDisposeScope();
                else s.momentum_buffer.copy_(buffer);
                break;
        }
    }

    // PyTorch keeps Adam's step as a float tensor since 1.12, as an int before.
    private static long Step(Dictionary<object, object?> py) => py.GetValueOrDefault("step") switch
    {
        Tensor t => (long)t.item<float>(),
        long l => l,
        double d => (long)d,
        _ => 0,
    };

    private static void SetOptions(OptimizerOptions options, Dictionary<object, object?> group)
    {
        if (Number(group, "lr") is { } lr) options.LearningRate = lr;
        if (Number(group, "initial_lr") is { } initial) options.InitialLearningRate = initial;
        switch (options)
        {
            // Adam's and AdamW's options are separate types with the same fields, named as PyTorch's keys.
            case Adam.Options or AdamW.Options:
                if (Betas(group) is var (beta1, beta2))
                {
                    SetField(options, "beta1", beta1);
                    SetField(options, "beta2", beta2);
                }
                foreach (var key in new[] { "eps", "weight_decay", "amsgrad", "maximize" }) SetField(options, key, Value(group, key));
                break;
            case SGD.Options:
                foreach (var key in new[] { "momentum", "dampening", "weight_decay", "nesterov", "maximize" }) SetField(options, key, Value(group, key));
                break;
        }
    }

    /// <summary>Sets the option field <paramref name="name"/> (a double? or bool?) when PyTorch gave a value for it.</summary>
    private static void SetField(OptimizerOptions options, string name, object? value)
    {
        if (value is null) return;
        options.GetType().GetField(name)!.SetValue(options, value);
    }

    /// <summary>A group's number (as double) or flag (as bool), or null when absent.</summary>
    private static object? Value(Dictionary<object, object?> group, string key) =>
        group.GetValueOrDefault(key) is bool flag ? flag : Number(group, key);

    private static (double?, double?)? Betas(Dictionary<object, object?> group) =>
        group.GetValueOrDefault("betas") is object?[] { Length: 2 } b ? (AsDouble(b[0]), AsDouble(b[1])) : null;

    private static double? Number(Dictionary<object, object?> group, string key) => AsDouble(group.GetValueOrDefault(key));

    private static double? AsDouble(object? value) => value switch
    {
        double d => d,
        long l => l,
        Tensor t when t.numel() == 1 => t.item<float>(),
        _ => null,
    };
}
