using Microsoft.ML;

namespace Lightning.Serving.Tests;

/// <summary>A loader whose model the test swaps by hand.</summary>
public sealed class ManualModelLoader(ITransformer model) : ModelLoader
{
    private ModelReloadToken _token = new();

    public ITransformer Model { get; private set; } = model;

    public override Microsoft.Extensions.Primitives.IChangeToken GetReloadToken() => _token;

    public override ITransformer GetModel() => Model;

    public void Reload(ITransformer model)
    {
        var previous = _token;
        Model = model;
        _token = new ModelReloadToken();
        previous.OnReload();
    }
}
