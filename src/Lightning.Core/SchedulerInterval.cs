namespace Lightning;

/// <summary>When a learning-rate scheduler steps (Lightning's <c>interval</c>).</summary>
public enum SchedulerInterval
{
    /// <summary>After every training epoch.</summary>
    Epoch,
    /// <summary>After every optimizer step.</summary>
    Step,
}
