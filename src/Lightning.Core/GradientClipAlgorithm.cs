namespace Lightning;

/// <summary>How gradients are clipped (Lightning's <c>gradient_clip_algorithm</c>).</summary>
public enum GradientClipAlgorithm
{
    /// <summary>Scale all gradients so their joint 2-norm is at most the clip value.</summary>
    Norm,
    /// <summary>Clamp each gradient element to [-value, value].</summary>
    Value,
}
