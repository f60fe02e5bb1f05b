namespace Lightning.Serving;

/// <summary>
/// The request-level parameters the server acts on: <c>timeout</c> (microseconds a request may wait for its run, as
/// Triton's; 0 is none) and <c>binary_data_output</c> (every output as binary data unless an output says otherwise). Others are ignored.
/// </summary>
internal sealed record InferParameters(long? TimeoutMicroseconds, bool BinaryDataOutput)
{
    public static readonly InferParameters None = new(null, false);
}
