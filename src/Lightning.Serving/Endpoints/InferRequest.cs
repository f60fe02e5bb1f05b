namespace Lightning.Serving;

/// <summary>A parsed v2 infer request: the optional id, the inputs, the requested outputs (null = all) and the request's parameters.</summary>
internal sealed record InferRequest(string? Id, List<InferenceTensor> Inputs, List<RequestedOutput>? Outputs, InferParameters Parameters)
{
    /// <summary>The requested output names, or null for all.</summary>
    public List<string>? OutputNames => Outputs?.ConvertAll(o => o.Name);
}
