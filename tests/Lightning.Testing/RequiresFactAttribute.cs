using Xunit;

namespace Lightning.Testing;

/// <summary>A fact that needs real components: reported as skipped, with the reason and how to install it, where one is missing.</summary>
public sealed class RequiresFactAttribute : FactAttribute
{
    public RequiresFactAttribute(params Component[] components) =>
        Skip = components.Select(Requires.Reason).FirstOrDefault(reason => reason is not null);
}
