using Lightning.Callbacks;

namespace Lightning.Loops;

/// <summary>
/// One row of the hook table: the hook's name (in logging errors and the profiler), the logging context it runs in
/// (Lightning's fx validator), what it calls on each callback and what it calls on the module (or the strategy, for steps).
/// </summary>
internal class Hook<TArgs, TResult>(string name, HookContext context, Action<Callback, Trainer, LightningModule, TArgs>? onCallback,
    Func<Trainer, LightningModule, TArgs, TResult>? onModule, bool monitorsLast = false)
{
    public string Name { get; } = name;
    public HookContext Context { get; } = context;
    public Action<Callback, Trainer, LightningModule, TArgs>? OnCallback { get; } = onCallback;
    public Func<Trainer, LightningModule, TArgs, TResult>? OnModule { get; } = onModule;

    /// <summary>Monitoring callbacks (checkpoints, early stopping) run after the module instead of before it.</summary>
    public bool MonitorsLast { get; } = monitorsLast;
}

/// <summary>A hook without a result.</summary>
internal sealed class Hook<TArgs>(string name, HookContext context, Action<Callback, Trainer, LightningModule, TArgs>? onCallback,
    Action<LightningModule, TArgs>? onModule, bool monitorsLast = false)
    : Hook<TArgs, ValueTuple>(name, context, onCallback, onModule is null ? null : (_, module, args) =>
    {
        onModule(module, args);
        return default;
    }, monitorsLast);
