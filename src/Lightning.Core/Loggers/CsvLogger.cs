using System.Globalization;
using System.Text;

namespace Lightning.Loggers;

/// <summary>
/// Writes metrics to <c>metrics.csv</c> (one row per logging call; columns are the sorted union of metric names,
/// the file is rewritten when a new one appears) and hyperparameters to <c>hparams.yaml</c>.
/// </summary>
public sealed class CsvLogger : LightningLogger
{
    /// <summary>The metrics file's name.</summary>
    public const string MetricsFileName = "metrics.csv";

    private readonly List<Dictionary<string, double>> _rows = [];
    private readonly SortedSet<string> _columns = new(StringComparer.Ordinal) { "step" };
    private int _rowsWritten;
    private bool _headerChanged = true;

    /// <summary>Logs to <paramref name="saveDir"/>/<paramref name="name"/>/version_N/metrics.csv.</summary>
    public CsvLogger(string saveDir, string name = "lightning_logs", int? version = null) : base(saveDir, name, version) { }

    /// <inheritdoc />
    public override void LogMetrics(IReadOnlyDictionary<string, double> metrics, long step)
    {
        var row = new Dictionary<string, double>(metrics) { ["step"] = step };
        foreach (var key in row.Keys) _headerChanged |= _columns.Add(key);
        _rows.Add(row);
    }

    /// <inheritdoc />
    public override void LogHyperparams(IReadOnlyDictionary<string, object?> hparams) => HparamsYaml.Write(LogDir, hparams);

    /// <inheritdoc />
    public override void Save()
    {
        if (_rowsWritten == _rows.Count && !_headerChanged) return;
        Directory.CreateDirectory(LogDir);
        var path = Path.Combine(LogDir, MetricsFileName);
        if (_headerChanged)
        {
            var text = new StringBuilder().AppendLine(string.Join(',', _columns));
            foreach (var row in _rows) text.AppendLine(Format(row));
            var temp = path + ".tmp";
            File.WriteAllText(temp, text.ToString());
            File.Move(temp, path, overwrite: true);
            _headerChanged = false;
        }
        else
        {
            File.AppendAllLines(path, _rows.Skip(_rowsWritten).Select(Format));
        }
        _rowsWritten = _rows.Count;
    }

    private string Format(Dictionary<string, double> row) =>
        string.Join(',', _columns.Select(c => row.TryGetValue(c, out var v) ? v.ToString("R", CultureInfo.InvariantCulture) : ""));
}
