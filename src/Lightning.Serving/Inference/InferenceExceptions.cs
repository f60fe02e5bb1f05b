namespace Lightning.Serving;

/// <summary>The request does not fit the model (400): a missing or unknown input, a wrong shape or datatype, bad data.</summary>
internal sealed class InferenceRequestException(string message) : Exception(message);

/// <summary>The model cannot take the request now (503): its queue is full or the server is stopping.</summary>
internal sealed class InferenceUnavailableException(string message) : Exception(message);

/// <summary>ONNX Runtime failed on a request that passed validation.</summary>
internal sealed class InferenceRunException(string message, Exception inner) : Exception(message, inner);
