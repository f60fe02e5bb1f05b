namespace Lightning.Testing;

/// <summary>A real component some tests need; <see cref="Requires.Reason"/> says why one is missing.</summary>
public enum Component
{
    /// <summary>A machine without CUDA (for the "no CUDA" messages).</summary>
    NoCuda,

    /// <summary>The Debian package dataset-fashion-mnist.</summary>
    FashionMnist,

    /// <summary>MPICH's mpiexec and libmpich.</summary>
    Mpich,

    /// <summary>strace.</summary>
    Strace,
}
