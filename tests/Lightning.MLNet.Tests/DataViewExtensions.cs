using Microsoft.ML;

namespace Lightning.MLNet.Tests;

internal static class DataViewExtensions
{
    /// <summary>Applies <paramref name="change"/> (e.g. a fitted transform) inline, so a test's data reads as one expression.</summary>
    public static IDataView Let(this IDataView data, Func<IDataView, IDataView> change) => change(data);
}
