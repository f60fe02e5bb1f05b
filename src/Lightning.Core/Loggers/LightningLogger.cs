namespace Lightning.Loggers;

/// <summary>
/// Receives metrics and hyperparameters from the trainer. Loggers that write files keep them under
/// <c>&lt;saveDir&gt;/&lt;name&gt;/version_N</c>, where N is the next free version unless given.
/// </summary>
public abstract class LightningLogger
{
    private readonly int? _requestedVersion;
    private int? _version;

    /// <summary>Logs under <paramref name="saveDir"/>/<paramref name="name"/>/version_<paramref name="version"/>.</summary>
    protected LightningLogger(string saveDir, string name, int? version)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(saveDir);
        ArgumentException.ThrowIfNullOrWhiteSpace(name);
        if (version is < 0)
            throw new ArgumentOutOfRangeException(nameof(version), version, $"version = {version} is not allowed: it must be 0 or more, or null for the next free one.");
        SaveDir = saveDir;
        Name = name;
        _requestedVersion = version;
    }

    /// <summary>The folder that holds the experiment folders.</summary>
    public string SaveDir { get; }

    /// <summary>The experiment name (default <c>lightning_logs</c>).</summary>
    public string Name { get; }

    /// <summary>The version number; chosen on first use as one more than the highest existing <c>version_N</c>.</summary>
    public int Version => _version ??= _requestedVersion ?? NextVersion(Path.Combine(SaveDir, Name));

    /// <summary>The folder this logger writes to.</summary>
    public string LogDir => Path.Combine(SaveDir, Name, $"version_{Version}");

    /// <summary>Records metrics of one step.</summary>
    public abstract void LogMetrics(IReadOnlyDictionary<string, double> metrics, long step);

    /// <summary>Records the module's hyperparameters.</summary>
    public abstract void LogHyperparams(IReadOnlyDictionary<string, object?> hparams);

    /// <summary>Makes what was logged durable; the trainer calls it after each logging call.</summary>
    public virtual void Save() { }

    /// <summary>Called after the trainer wrote a checkpoint to <paramref name="path"/>.</summary>
    public virtual void AfterSaveCheckpoint(string path) { }

    /// <summary>Called once when a run ends.</summary>
    public virtual void Complete(RunStatus status) => Save();

    internal static int NextVersion(string experimentDir)
    {
        if (!Directory.Exists(experimentDir)) return 0;
        var versions = Directory.EnumerateDirectories(experimentDir, "version_*")
            .Select(d => int.TryParse(Path.GetFileName(d)["version_".Length..], out var v) ? v : -1);
        return versions.DefaultIfEmpty(-1).Max() + 1;
    }
}
