namespace Lightning.Callbacks;

/// <summary>
/// Writes a checkpoint when a run fails, as Lightning's <c>OnExceptionCheckpoint</c>: <c>&lt;DirPath&gt;/&lt;Filename&gt;.ckpt</c>,
/// overwritten by each failure, so the work done before it can be resumed with <c>Fit(..., ckptPath: path)</c>.
/// </summary>
/// <remarks>
/// The exception still propagates unchanged. Should writing the checkpoint fail too, that failure is printed and recorded
/// in the original exception's <see cref="Exception.Data"/> under <c>"OnExceptionCheckpoint"</c>, never thrown in its place.
/// </remarks>
/// <example><code>
/// var trainer = new Trainer(new TrainerOptions { Callbacks = [new OnExceptionCheckpoint("checkpoints")] });
/// </code></example>
public sealed class OnExceptionCheckpoint : Callback
{
    /// <summary>The file name Lightning uses, without extension.</summary>
    public const string DefaultFilename = "on_exception";

    /// <summary>Writes <c>&lt;<paramref name="dirPath"/>&gt;/&lt;<paramref name="filename"/>&gt;.ckpt</c> on failure.</summary>
    /// <param name="dirPath">The folder of the checkpoint.</param>
    /// <param name="filename">The file name without extension.</param>
    public OnExceptionCheckpoint(string dirPath, string filename = DefaultFilename)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(dirPath);
        ArgumentException.ThrowIfNullOrWhiteSpace(filename);
        if (filename.IndexOfAny(['/', '\\']) >= 0)
            throw new ArgumentException($"filename = \"{filename}\" is not allowed: it is a file name, not a path; put folders in dirPath.", nameof(filename));
        DirPath = Path.GetFullPath(dirPath);
        Filename = filename;
    }

    /// <summary>The folder of the checkpoint.</summary>
    public string DirPath { get; }

    /// <summary>The file name without extension.</summary>
    public string Filename { get; }

    /// <summary>The checkpoint written on failure.</summary>
    public string CheckpointPath => Path.Combine(DirPath, Filename + ".ckpt");

    /// <inheritdoc />
    public override bool RunsLast => true;

    /// <inheritdoc />
    public override void OnException(Trainer trainer, LightningModule module, Exception exception)
    {
        try
        {
            trainer.SaveCheckpoint(CheckpointPath);
        }
        catch (Exception saveError)
        {
            var message = $"OnExceptionCheckpoint could not write '{CheckpointPath}': {saveError.Message}";
            Console.Error.WriteLine($"Warning: {message}");
            if (exception is not null) exception.Data["OnExceptionCheckpoint"] = message;
        }
    }
}
