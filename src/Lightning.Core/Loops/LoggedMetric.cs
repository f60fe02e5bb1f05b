namespace Lightning.Loops;

/// <summary>
/// One <c>Log</c> call as the module made it, before the metrics connector applies the hook's defaults; with
/// <paramref name="Source"/>, a metric object whose epoch value is computed (and which is reset) at the epoch's end.
/// </summary>
internal readonly record struct LoggedMetric(string Name, double Value, bool ProgBar, bool? OnStep, bool? OnEpoch, ReduceFx ReduceFx,
    int? BatchSize, bool Logger, bool SyncDist, Lightning.Metrics.Metric? Source = null);
