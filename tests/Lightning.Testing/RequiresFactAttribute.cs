using Xunit;

namespace Lightning.Testing;

/// <summary>A fact that needs a real component: reported as skipped, with the reason and how to install it, where it is missing.</summary>
public sealed class RequiresFactAttribute : FactAttribute
{
    public RequiresFactAttribute(Component component) => Skip = Requires.Reason(component);
}
