namespace Lightning.Serving;

/// <summary>The model cannot take the request now (503): its queue is full or the server is stopping.</summary>
internal sealed class InferenceUnavailableException(string message) : Exception(message);
