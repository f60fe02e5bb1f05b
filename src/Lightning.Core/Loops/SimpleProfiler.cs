using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace Lightning.Loops;

/// <summary>The "simple" profiler: wall time per hook and loop action, printed as a table when a run ends.</summary>
internal sealed class SimpleProfiler
{
    private readonly Dictionary<string, (int Calls, TimeSpan Total)> _records = new();
    private readonly Stopwatch _run = Stopwatch.StartNew();

    public void Record(string action, TimeSpan elapsed)
    {
        var (calls, total) = _records.GetValueOrDefault(action);
        _records[action] = (calls + 1, total + elapsed);
    }

    public string Report(string title)
    {
        var inv = CultureInfo.InvariantCulture;
        var total = _run.Elapsed.TotalSeconds;
        var text = new StringBuilder().AppendLine($"{title} Profiler Report")
            .AppendLine(string.Format(inv, "{0,-48} | {1,14} | {2,10} | {3,14} | {4,9}", "Action", "Mean (s)", "Calls", "Total (s)", "Percent"));
        foreach (var (action, (calls, sum)) in _records.OrderByDescending(r => r.Value.Total))
            text.AppendLine(string.Format(inv, "{0,-48} | {1,14:0.000000} | {2,10} | {3,14:0.000} | {4,8:0.0}%", action,
                sum.TotalSeconds / calls, calls, sum.TotalSeconds, 100 * sum.TotalSeconds / total));
        return text.ToString();
    }
}
