using Microsoft.Extensions.Primitives;

namespace Lightning.Serving;

/// <summary>
/// The change token a <see cref="ModelLoader"/> (and the file watcher behind the v2 models) hands out: it fires once,
/// when a new model is ready. The owner swaps in a fresh token after each successful load and then calls
/// <see cref="OnReload"/> on the old one.
/// </summary>
public class ModelReloadToken : IChangeToken
{
    private readonly CancellationTokenSource _cts = new();

    /// <summary>Always true: callbacks are invoked when the token fires.</summary>
    public bool ActiveChangeCallbacks => true;

    /// <summary>True once <see cref="OnReload"/> has been called.</summary>
    public bool HasChanged => _cts.IsCancellationRequested;

    /// <summary>Registers a callback that runs when the token fires (at once if it already has).</summary>
    /// <param name="callback">The callback.</param>
    /// <param name="state">The state passed to the callback.</param>
    /// <returns>A registration that unregisters the callback when disposed.</returns>
    public IDisposable RegisterChangeCallback(Action<object?> callback, object? state) => _cts.Token.Register(callback, state);

    /// <summary>Fires the token: every registered callback runs.</summary>
    public void OnReload() => _cts.Cancel();
}
