using System.Globalization;
using System.Numerics;
using Xunit;

namespace Lightning.Testing;

/// <summary>
/// Element-wise closeness as numpy's <c>allclose</c>: |actual − expected| ≤ atol + rtol·|expected|, NaN agreeing only
/// with NaN. A failure names the worst element with both values, so one message says how far off the result is.
/// </summary>
public static class Approx
{
    /// <summary>
    /// The tolerance for float32 results of the same function computed two ways (ONNX Runtime against libtorch, a merged
    /// batch against single rows): their kernels sum in different orders.
    /// </summary>
    public const double RelativeTolerance = 1e-4;

    /// <summary>The absolute floor that lets values near zero differ by rounding alone.</summary>
    public const double AbsoluteTolerance = 1e-5;

    /// <summary>Asserts equal lengths and every element within tolerance; <paramref name="what"/> names the values in the message.</summary>
    public static void AssertClose<T>(IReadOnlyList<T> expected, IReadOnlyList<T> actual, double rtol = RelativeTolerance,
        double atol = AbsoluteTolerance, string what = "values") where T : IFloatingPointIeee754<T>
    {
        Assert.True(expected.Count == actual.Count, $"{what}: {actual.Count} elements, expected {expected.Count}");
        double worst = 0;
        int worstIndex = -1;
        for (int i = 0; i < expected.Count; i++)
        {
            double e = double.CreateChecked(expected[i]), a = double.CreateChecked(actual[i]);
            double excess = double.IsNaN(e) != double.IsNaN(a) ? double.PositiveInfinity
                : double.IsNaN(e) || e == a ? 0
                : Math.Abs(a - e) - (atol + rtol * Math.Abs(e));
            if (excess > worst) (worst, worstIndex) = (excess, i);
        }
        if (worstIndex >= 0)
            Assert.Fail(string.Create(CultureInfo.InvariantCulture,
                $"{what}: element {worstIndex} is {actual[worstIndex]}, expected {expected[worstIndex]} (beyond rtol {rtol}, atol {atol})"));
    }
}
