namespace Lightning.Serving;

/// <summary>A repository load or unload that cannot be done: <see cref="Status"/> is 404 for an unknown model, 400 otherwise.</summary>
internal sealed class RepositoryException(int status, string message) : Exception(message)
{
    public int Status { get; } = status;
}
