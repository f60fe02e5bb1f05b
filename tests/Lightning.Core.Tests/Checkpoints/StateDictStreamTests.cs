using Lightning.Checkpoints;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Checkpoints;

/// <summary>The streaming state-dict format must stay TorchSharp's own (module.save / module.load), for every dtype and layout.</summary>
public class StateDictStreamTests
{
    [Fact]
    public void WhatTorchSharpSaves_StreamsIn_AndWhatStreamsOut_TorchSharpLoads()
    {
        var source = Model(seed: 1);
        using var saved = new MemoryStream();
        source.save(saved);
        var streamedIn = Model(seed: 2);
        StateDictStream.Read(new MemoryStream(saved.ToArray()), streamedIn, strict: true, "test");
        AssertSame(source, streamedIn);

        using var streamed = new MemoryStream();
        StateDictStream.Write(streamed, source);
        Assert.Equal(saved.ToArray(), streamed.ToArray());
        var loaded = Model(seed: 3);
        loaded.load(new MemoryStream(streamed.ToArray()));
        AssertSame(source, loaded);
    }

    [Fact]
    public void TensorsLargerThanOneChunk_NonContiguousAndEveryDtype_RoundTripExactly()
    {
        foreach (var (from, to) in new[] { (true, false), (false, true), (true, true) })
        {
            var source = new Holder(transposedWide: from);
            using (no_grad())
            {
                // More than two chunks and an odd length.
                source.big.copy_(randn(source.big.shape));
                source.wide.copy_(randn(3, 5));
            }
            using var stream = new MemoryStream();
            StateDictStream.Write(stream, source);
            var target = new Holder(transposedWide: to);
            Assert.Equal(!to, target.wide.is_contiguous());
            StateDictStream.Read(new MemoryStream(stream.ToArray()), target, strict: true, "test");
            AssertSame(source, target);
        }
    }

    [Fact]
    public void Mismatches_NameTheKeyTheFileAndWhatDiffers()
    {
        using var stream = new MemoryStream();
        StateDictStream.Write(stream, nn.Linear(4, 3));
        var bytes = stream.ToArray();

        var shape = Assert.Throws<InvalidDataException>(() => StateDictStream.Read(new MemoryStream(bytes), nn.Linear(5, 3), true, "Checkpoint 'x.ckpt'"));
        Assert.Contains("Checkpoint 'x.ckpt': entry 'weight' has shape [3, 4] in the file but [3, 5] in the module", shape.Message);

        var dtype = Assert.Throws<InvalidDataException>(() => StateDictStream.Read(new MemoryStream(bytes), nn.Linear(4, 3).to(float64), true, "f"));
        Assert.Contains("entry 'weight' is Float32 in the file but Float64 in the module", dtype.Message);

        var keys = Assert.Throws<InvalidDataException>(() => StateDictStream.Read(new MemoryStream(bytes), nn.Linear(4, 3, hasBias: false), true, "f"));
        Assert.Contains("unexpected keys: bias", keys.Message);
        var both = Assert.Throws<InvalidDataException>(() => StateDictStream.Read(new MemoryStream(bytes), new Holder(false), true, "f"));
        Assert.Contains("missing keys: big, wide, ", both.Message);
        Assert.Contains("unexpected keys: weight, bias", both.Message);

        // Not strict: the keys both have are loaded, the others skipped.
        var target = nn.Linear(4, 3, hasBias: false);
        StateDictStream.Read(new MemoryStream(bytes), target, strict: false, "f");

        var truncated = Assert.Throws<InvalidDataException>(() => StateDictStream.Read(new MemoryStream(bytes[..^5]), nn.Linear(4, 3), true, "Checkpoint 'y.ckpt'"));
        Assert.Contains("Checkpoint 'y.ckpt' is not a valid TorchSharp state dict: it ends inside a tensor", truncated.Message);
    }

    private static nn.Module Model(int seed)
    {
        manual_seed(seed);
        return nn.Sequential(nn.Linear(7, 5), nn.BatchNorm1d(5), nn.Linear(5, 2));
    }

    private static void AssertSame(nn.Module expected, nn.Module actual)
    {
        var a = expected.state_dict();
        var b = actual.state_dict();
        Assert.Equal(a.Keys, b.Keys);
        foreach (var key in a.Keys)
        {
            Assert.Equal(a[key].dtype, b[key].dtype);
            Assert.Equal(a[key].shape, b[key].shape);
            Assert.True(a[key].eq(b[key]).all().item<bool>(), key);
        }
    }

    private sealed class Holder : nn.Module
    {
        public readonly TorchSharp.Modules.Parameter big = new(zeros(StateDictStream.ChunkBytes / 4 * 2 + 7));
        public readonly TorchSharp.Modules.Parameter wide;
        private readonly Tensor flags = tensor(new[] { true, false, true });
        private readonly Tensor half = arange(6, ScalarType.Float16);
        private readonly Tensor counts = arange(4, ScalarType.Int64);

        public Holder(bool transposedWide) : base(nameof(Holder))
        {
            // A transposed view is not contiguous: it must be written and read in logical order.
            wide = new TorchSharp.Modules.Parameter(transposedWide ? zeros(5, 3).t() : zeros(3, 5));
            RegisterComponents();
        }
    }
}
