namespace Lightning.Serving.Tests.ModelLifecycle;

public sealed class GenerationSlotTests
{
    private sealed class CountingGeneration : ModelGeneration
    {
        public int Disposals;

        protected override void DisposeResources() => Disposals++;
    }

    [Fact]
    public void Replace_OldGenerationLeased_DisposedWhenItsLastLeaseIsBack()
    {
        var slot = new GenerationSlot<CountingGeneration>();
        var first = new CountingGeneration();
        var second = new CountingGeneration();
        slot.Replace(first);
        var leased = slot.Acquire();
        Assert.Same(first, leased);

        slot.Replace(second);

        Assert.True(first.IsRetired);
        Assert.Equal(0, first.Disposals);
        Assert.Same(second, slot.Acquire());
        first.Release();
        Assert.Equal(1, first.Disposals);
        Assert.True(first.IsDisposed);
        Assert.Equal(0, second.Disposals);
    }

    [Fact]
    public void Replace_OldGenerationIdle_DisposedAtOnce()
    {
        var slot = new GenerationSlot<CountingGeneration>();
        var first = new CountingGeneration();
        slot.Replace(first);

        slot.Replace(new CountingGeneration());

        Assert.Equal(1, first.Disposals);
        Assert.False(first.TryAcquire());
        Assert.Equal(1, first.Disposals);
    }

    [Fact]
    public void Close_RetiresCurrentAndRefusesLaterGenerations()
    {
        var slot = new GenerationSlot<CountingGeneration>();
        var first = new CountingGeneration();
        slot.Replace(first);
        var leased = slot.Acquire()!;

        slot.Close();
        var late = new CountingGeneration();

        Assert.Null(slot.Current);
        Assert.Null(slot.Acquire());
        Assert.False(slot.Replace(late));
        Assert.Equal(1, late.Disposals);
        Assert.Equal(0, first.Disposals);
        leased.Release();
        Assert.Equal(1, first.Disposals);
    }

    [Fact]
    public async Task AcquireAndReplace_Concurrently_NeverDisposeALeasedGeneration()
    {
        var slot = new GenerationSlot<CountingGeneration>();
        slot.Replace(new CountingGeneration());
        var failures = 0;
        var stop = false;
        var renters = Enumerable.Range(0, 2).Select(_ => Task.Run(() =>
        {
            while (!Volatile.Read(ref stop))
            {
                var generation = slot.Acquire()!;
                if (generation.IsDisposed) Interlocked.Increment(ref failures);
                generation.Release();
            }
        })).ToArray();

        var generations = Enumerable.Range(0, 2000).Select(_ => new CountingGeneration()).ToList();
        foreach (var generation in generations) slot.Replace(generation);
        Volatile.Write(ref stop, true);
        await Task.WhenAll(renters);
        slot.Close();

        Assert.Equal(0, failures);
        Assert.All(generations, g => Assert.Equal(1, g.Disposals));
    }
}
