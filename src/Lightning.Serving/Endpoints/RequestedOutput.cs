namespace Lightning.Serving;

/// <summary>An output named in a v2 request's <c>outputs</c>, with its <c>binary_data</c> parameter (null when not given).</summary>
internal readonly record struct RequestedOutput(string Name, bool? BinaryData);
