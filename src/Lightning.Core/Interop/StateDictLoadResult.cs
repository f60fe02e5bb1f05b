namespace Lightning.Interop;

/// <summary>What a non-strict <see cref="StateDictExtensions.LoadStateDict"/> left out, as PyTorch's <c>load_state_dict</c> returns.</summary>
/// <param name="MissingKeys">The module's keys that the file did not have (left as they were).</param>
/// <param name="UnexpectedKeys">The file's keys that the module does not have (ignored).</param>
public sealed record StateDictLoadResult(IReadOnlyList<string> MissingKeys, IReadOnlyList<string> UnexpectedKeys);
