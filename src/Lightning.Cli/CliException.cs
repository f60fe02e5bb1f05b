namespace Lightning;

/// <summary>A problem with the command line or the config: the CLI prints its message as one line and exits with code 2.</summary>
public sealed class CliException(string message) : Exception(message);
