namespace Lightning.Serving;

/// <summary>A parsed v2 infer request: the optional id, the inputs and the requested outputs (null = all).</summary>
internal sealed record InferRequest(string? Id, List<InferenceTensor> Inputs, List<string>? Outputs);
