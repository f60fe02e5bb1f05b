using System.Buffers;

namespace Lightning.Checkpoints;

/// <summary>
/// A write-only stream over arrays rented from <see cref="ArrayPool{T}.Shared"/>, for capturing weights and optimizer state.
/// A checkpoint per epoch through MemoryStream growth and ToArray allocated several times the state's size, and the extra
/// garbage collections cost more than the capture itself (libtorch's freed buffers are paged in again after each one).
/// TorchSharp's savers close the stream they write to, so closing keeps the bytes; <see cref="Return"/> gives them back.
/// </summary>
internal sealed class CaptureBuffer : Stream
{
    private byte[] _array = ArrayPool<byte>.Shared.Rent(16 * 1024);
    private int _length;

    /// <summary>The bytes written so far.</summary>
    public ReadOnlyMemory<byte> Written => _array.AsMemory(0, _length);

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => _length;

    public override long Position
    {
        get => _length;
        set => throw new NotSupportedException();
    }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        EnsureCapacity(buffer.Length);
        buffer.CopyTo(_array.AsSpan(_length));
        _length += buffer.Length;
    }

    public override void WriteByte(byte value)
    {
        EnsureCapacity(1);
        _array[_length++] = value;
    }

    public override void Flush() { }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    private void EnsureCapacity(int count)
    {
        ObjectDisposedException.ThrowIf(_array.Length == 0, this);
        if (_length + count <= _array.Length) return;
        var larger = ArrayPool<byte>.Shared.Rent(Math.Max(_array.Length * 2, _length + count));
        _array.AsSpan(0, _length).CopyTo(larger);
        ArrayPool<byte>.Shared.Return(_array);
        _array = larger;
    }

    /// <summary>Returns the array to the pool; the buffer must not be read afterwards.</summary>
    public void Return()
    {
        if (_array.Length == 0) return;
        ArrayPool<byte>.Shared.Return(_array);
        _array = [];
        _length = 0;
    }
}
