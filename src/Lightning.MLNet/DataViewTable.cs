using Microsoft.ML;
using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Lightning.MLNet;

/// <summary>
/// The feature and label columns of an <see cref="IDataView"/>, read once through a row cursor (typed getters and one
/// reused <see cref="VBuffer{T}"/>, so no value is boxed) into two tensors that every epoch's batches are gathered
/// from. Rows with a missing label (key 0, or NaN) are skipped, as ML.NET's trainers do. A Boolean label (binary
/// classification) becomes a float32 target of 0 or 1.
/// </summary>
internal sealed class DataViewTable : IDisposable
{
    private DataViewTable(Tensor features, Tensor labels, int rows)
    {
        Features = features;
        Labels = labels;
        Rows = rows;
    }

    /// <summary>The features, float32 [rows, F].</summary>
    public Tensor Features { get; }

    /// <summary>Zero-based class indices (int64 [rows], multiclass) or targets (float32 [rows], regression; 0/1 binary).</summary>
    public Tensor Labels { get; }

    public int Rows { get; }

    public void Dispose()
    {
        Features.Dispose();
        Labels.Dispose();
    }

    public static DataViewTable Read(IDataView data, string featureColumnName, int featureCount, string labelColumnName, HeadKind task)
    {
        bool classLabels = task == HeadKind.Multiclass, booleanLabels = task == HeadKind.Binary;
        var featureColumn = data.Schema[featureColumnName];
        var labelColumn = data.Schema[labelColumnName];
        var capacity = data.GetRowCount() is long n and > 0 and < int.MaxValue ? (int)n : 256;
        var features = new float[checked(capacity * featureCount)];
        var classes = classLabels ? new long[capacity] : null;
        var targets = classLabels ? null : new float[capacity];
        int rows = 0;

        using var cursor = data.GetRowCursor([featureColumn, labelColumn]);
        var featureGetter = cursor.GetGetter<VBuffer<float>>(featureColumn);
        ValueGetter<uint>? keyGetter = classLabels ? cursor.GetGetter<uint>(labelColumn) : null;
        ValueGetter<float>? targetGetter = classLabels || booleanLabels ? null : cursor.GetGetter<float>(labelColumn);
        ValueGetter<bool>? booleanGetter = booleanLabels ? cursor.GetGetter<bool>(labelColumn) : null;
        var buffer = default(VBuffer<float>);
        uint key = 0;
        float target = 0;
        bool positive = false;
        while (cursor.MoveNext())
        {
            if (keyGetter is not null)
            {
                keyGetter(ref key);
                if (key == 0) continue;
            }
            else if (booleanGetter is not null)
            {
                booleanGetter(ref positive);
                target = positive ? 1 : 0;
            }
            else
            {
                targetGetter!(ref target);
                if (float.IsNaN(target)) continue;
            }
            featureGetter(ref buffer);
            if (rows == capacity)
            {
                capacity *= 2;
                Array.Resize(ref features, checked(capacity * featureCount));
                if (classes is not null) Array.Resize(ref classes, capacity);
                if (targets is not null) Array.Resize(ref targets, capacity);
            }
            CopyRow(buffer, features.AsSpan(rows * featureCount, featureCount), featureColumnName, cursor.Position);
            if (classes is not null) classes[rows] = key - 1;
            else targets![rows] = target;
            rows++;
        }
        Array.Resize(ref features, rows * featureCount);
        var labels = classes is not null ? tensor(classes.AsSpan(0, rows).ToArray(), [rows]) : tensor(targets.AsSpan(0, rows).ToArray(), [rows]);
        return new DataViewTable(tensor(features, [rows, featureCount]), labels, rows);
    }

    /// <summary>Writes one row's vector, dense or sparse, into <paramref name="target"/>, whose length it must have.</summary>
    internal static void CopyRow(in VBuffer<float> row, Span<float> target, string columnName, long position)
    {
        if (row.Length != target.Length)
            throw new InvalidOperationException($"Column '{columnName}': row {position} has {row.Length} values; expected {target.Length}.");
        if (row.IsDense)
        {
            row.GetValues().CopyTo(target);
            return;
        }
        target.Clear();
        var values = row.GetValues();
        var indices = row.GetIndices();
        for (int i = 0; i < values.Length; i++) target[indices[i]] = values[i];
    }

    /// <summary>Batches of [features [b, F] float32, labels [b] (int64 classes or float32 targets, 0/1 for binary)].</summary>
    public IEnumerable<IList<Tensor>> Batches(int batchSize, Random? shuffle) => new BatchSequence(this, batchSize, shuffle);

    private sealed class BatchSequence(DataViewTable table, int batchSize, Random? shuffle) : IEnumerable<IList<Tensor>>
    {
        public IEnumerator<IList<Tensor>> GetEnumerator()
        {
            var order = Enumerable.Range(0, table.Rows).Select(i => (long)i).ToArray();
            // One permutation per enumeration, i.e. per epoch, drawn from the seeded generator.
            shuffle?.Shuffle(order);
            for (int start = 0; start < order.Length; start += batchSize)
            {
                // Gathered natively from the table's tensors, with no managed copy of the features. As with TorchSharp's
                // DataLoader, a batch is disposed when the next is asked for, so an epoch leaves nothing to the GC.
                Tensor x, y;
                using (var index = tensor(order.AsSpan(start, Math.Min(batchSize, order.Length - start)).ToArray()))
                    (x, y) = (table.Features.index_select(0, index), table.Labels.index_select(0, index));
                try
                {
                    yield return [x, y];
                }
                finally
                {
                    x.Dispose();
                    y.Dispose();
                }
            }
        }

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
