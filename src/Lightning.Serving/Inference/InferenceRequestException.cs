namespace Lightning.Serving;

/// <summary>The request does not fit the model (400): a missing or unknown input, a wrong shape or datatype, bad data.</summary>
internal sealed class InferenceRequestException(string message) : Exception(message);
