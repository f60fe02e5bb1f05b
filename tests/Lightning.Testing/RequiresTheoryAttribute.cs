using Xunit;

namespace Lightning.Testing;

/// <summary>A theory that needs a real component: reported as skipped, with the reason and how to install it, where it is missing.</summary>
public sealed class RequiresTheoryAttribute : TheoryAttribute
{
    public RequiresTheoryAttribute(Component component) => Skip = Requires.Reason(component);
}
