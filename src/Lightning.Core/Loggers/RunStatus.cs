namespace Lightning.Loggers;

/// <summary>How a run ended, for <see cref="LightningLogger.Complete"/>.</summary>
public enum RunStatus
{
    /// <summary>The run finished.</summary>
    Success,
    /// <summary>The run stopped with an exception.</summary>
    Failed,
}
