using Microsoft.ML;
using Microsoft.ML.Data;

namespace Lightning.MLNet.Tests;

/// <summary>Reading an <see cref="IDataView"/> into training batches.</summary>
public sealed class DataViewTableTests
{
    private readonly MLContext _ml = new(seed: 0);

    private sealed class SparseRow
    {
        [VectorType(4)]
        public VBuffer<float> Features { get; set; }

        public uint Label { get; set; }
    }

    private IDataView View(IEnumerable<SparseRow> rows)
    {
        var schema = SchemaDefinition.Create(typeof(SparseRow));
        schema[nameof(SparseRow.Label)].ColumnType = new KeyDataViewType(typeof(uint), 3);
        return _ml.Data.LoadFromEnumerable(rows, schema);
    }

    private sealed class TargetRow
    {
        [VectorType(4)]
        public VBuffer<float> Features { get; set; }

        public float Target { get; set; }
    }

    private static readonly InputColumn Features4 = new("Features", 4, TorchSharp.torch.ScalarType.Float32);

    [Fact]
    public void Read_SparseFeaturesAndKeyLabels_DenseRowsAndZeroBasedClasses()
    {
        // LoadFromEnumerable stores a key property's value v as key v + 1, which Read turns back into class v.
        var data = View([
            new SparseRow { Features = new VBuffer<float>(4, 2, [1f, 2f], [0, 3]), Label = 2 },
            new SparseRow { Features = new VBuffer<float>(4, [9f, 10f, 11f, 12f]), Label = 0 },
        ]);

        var table = DataViewTable.Read(data, [Features4], "Label", HeadKind.Multiclass);

        Assert.Equal(2, table.Rows);
        Assert.Equal([1f, 0f, 0f, 2f, 9f, 10f, 11f, 12f], table.Inputs[0].data<float>().ToArray());
        Assert.Equal([2L, 0L], table.Labels.data<long>().ToArray());
    }

    [Fact]
    public void Read_MissingTargets_SkipsThoseRows()
    {
        var data = _ml.Data.LoadFromEnumerable([
            new TargetRow { Features = new VBuffer<float>(4, [1f, 2f, 3f, 4f]), Target = 0.5f },
            new TargetRow { Features = new VBuffer<float>(4, [5f, 6f, 7f, 8f]), Target = float.NaN },
            new TargetRow { Features = new VBuffer<float>(4, [9f, 10f, 11f, 12f]), Target = -1f },
        ]);

        var table = DataViewTable.Read(data, [Features4], "Target", HeadKind.Regression);

        Assert.Equal(2, table.Rows);
        Assert.Equal([1f, 2f, 3f, 4f, 9f, 10f, 11f, 12f], table.Inputs[0].data<float>().ToArray());
        Assert.Equal([0.5f, -1f], table.Labels.data<float>().ToArray());
    }

    [Fact]
    public void Batches_ShuffleEachEpochWithTheSeed_AndCoverEveryRowOnce()
    {
        var data = View(Enumerable.Range(0, 10).Select(i => new SparseRow { Features = new VBuffer<float>(4, [i, 0, 0, 0]), Label = (uint)(i % 3) }));
        var table = DataViewTable.Read(data, [Features4], "Label", HeadKind.Multiclass);

        static List<float[]> Epochs(IEnumerable<IList<TorchSharp.torch.Tensor>> batches, int epochs) =>
            Enumerable.Range(0, epochs).Select(_ => batches.SelectMany(b => b[0][.., 0].contiguous().data<float>().ToArray()).ToArray()).ToList();
        var first = Epochs(table.Batches(4, new Random(3)), 2);
        var again = Epochs(table.Batches(4, new Random(3)), 2);

        Assert.Equal(first, again);
        Assert.NotEqual(first[0], first[1]);
        Assert.All(first, epoch => Assert.Equal(Enumerable.Range(0, 10).Select(i => (float)i), epoch.Order()));
        Assert.Equal([4L, 4L, 2L], table.Batches(4, null).Select(b => b[0].shape[0]));
        Assert.Equal(Enumerable.Range(0, 10).Select(i => (long)(i % 3)), table.Batches(4, null).SelectMany(b => b[1].data<long>().ToArray()));
    }
}
