namespace Lightning.Serving;

/// <summary>Where a loader's model comes from, for <see cref="ModelInfo.Source"/>.</summary>
internal interface IModelSource
{
    string Source { get; }
}
