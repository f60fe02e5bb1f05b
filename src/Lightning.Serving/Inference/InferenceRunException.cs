namespace Lightning.Serving;

/// <summary>ONNX Runtime failed on a request that passed validation.</summary>
internal sealed class InferenceRunException(string message, Exception inner) : Exception(message, inner);
