using System.Diagnostics;
using Lightning.Callbacks;

namespace Lightning.Loops;

/// <summary>
/// Runs a trainer's hooks, rows of the <see cref="Hooks"/> table, in Lightning's order: the callbacks (in list order),
/// then the module; with <see cref="Hook{TArgs, TResult}.MonitorsLast"/>, monitoring callbacks after the module. Each
/// hook runs in its logging context, restored afterwards (hooks nest: a checkpoint saved inside a batch hook), and is
/// timed when profiling.
/// </summary>
internal sealed class HookDispatcher(Trainer trainer, IReadOnlyList<Callback> callbacks, MetricsConnector metrics, SimpleProfiler? profiler)
{
    public TResult? Call<TArgs, TResult>(Hook<TArgs, TResult> hook, LightningModule module, TArgs args)
    {
        var (outerContext, outerHook) = (metrics.Context, metrics.Hook);
        (metrics.Context, metrics.Hook) = (hook.Context, hook.Name);
        var started = profiler is null ? 0 : Stopwatch.GetTimestamp();
        try
        {
            TResult? result = default;
            if (hook.OnCallback is { } onCallback)
                for (int i = 0; i < callbacks.Count; i++)
                    if (!hook.MonitorsLast || !callbacks[i].RunsLast) onCallback(callbacks[i], trainer, module, args);
            if (hook.OnModule is { } onModule) result = onModule(trainer, module, args);
            if (hook.MonitorsLast && hook.OnCallback is { } afterModule)
                for (int i = 0; i < callbacks.Count; i++)
                    if (callbacks[i].RunsLast) afterModule(callbacks[i], trainer, module, args);
            return result;
        }
        finally
        {
            (metrics.Context, metrics.Hook) = (outerContext, outerHook);
            profiler?.Record(hook.Name, Stopwatch.GetElapsedTime(started));
        }
    }

    public void Call(Hook<ValueTuple> hook, LightningModule module) => Call(hook, module, default);
}
