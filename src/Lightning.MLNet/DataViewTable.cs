using Microsoft.ML;
using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Lightning.MLNet;

/// <summary>
/// The feature and label columns of an <see cref="IDataView"/>, read once through a row cursor into flat arrays
/// (typed getters and one reused <see cref="VBuffer{T}"/>, so no value is boxed). Rows with a missing label
/// (key 0, or NaN) are skipped, as ML.NET's trainers do.
/// </summary>
internal sealed class DataViewTable
{
    private DataViewTable(float[] features, int featureCount, long[]? classLabels, float[]? regressionLabels, int rows)
    {
        Features = features;
        FeatureCount = featureCount;
        ClassLabels = classLabels;
        RegressionLabels = regressionLabels;
        Rows = rows;
    }

    public float[] Features { get; }
    public int FeatureCount { get; }
    /// <summary>Zero-based class indices (multiclass).</summary>
    public long[]? ClassLabels { get; }
    /// <summary>Targets (regression).</summary>
    public float[]? RegressionLabels { get; }
    public int Rows { get; }

    public static DataViewTable Read(IDataView data, string featureColumnName, int featureCount, string labelColumnName, bool classLabels)
    {
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
        ValueGetter<float>? targetGetter = classLabels ? null : cursor.GetGetter<float>(labelColumn);
        var buffer = default(VBuffer<float>);
        uint key = 0;
        float target = 0;
        while (cursor.MoveNext())
        {
            if (keyGetter is not null)
            {
                keyGetter(ref key);
                if (key == 0) continue;
            }
            else
            {
                targetGetter!(ref target);
                if (float.IsNaN(target)) continue;
            }
            featureGetter(ref buffer);
            if (buffer.Length != featureCount)
                throw new InvalidOperationException(
                    $"Column '{featureColumnName}': row {cursor.Position} has {buffer.Length} values; expected {featureCount}.");
            if (rows == capacity)
            {
                capacity *= 2;
                Array.Resize(ref features, checked(capacity * featureCount));
                if (classes is not null) Array.Resize(ref classes, capacity);
                if (targets is not null) Array.Resize(ref targets, capacity);
            }
            var row = features.AsSpan(rows * featureCount, featureCount);
            if (buffer.IsDense)
                buffer.GetValues().CopyTo(row);
            else
            {
                row.Clear();
                var values = buffer.GetValues();
                var indices = buffer.GetIndices();
                for (int i = 0; i < values.Length; i++) row[indices[i]] = values[i];
            }
            if (classes is not null) classes[rows] = key - 1;
            else targets![rows] = target;
            rows++;
        }
        return new DataViewTable(features, featureCount, classes, targets, rows);
    }

    /// <summary>Batches of [features [b, F] float32, labels [b] (int64 classes or float32 targets)].</summary>
    public IEnumerable<IList<Tensor>> Batches(int batchSize, Random? shuffle) => new BatchSequence(this, batchSize, shuffle);

    private sealed class BatchSequence(DataViewTable table, int batchSize, Random? shuffle) : IEnumerable<IList<Tensor>>
    {
        public IEnumerator<IList<Tensor>> GetEnumerator()
        {
            var order = Enumerable.Range(0, table.Rows).ToArray();
            // One permutation per enumeration, i.e. per epoch, drawn from the seeded generator.
            shuffle?.Shuffle(order);
            int f = table.FeatureCount;
            for (int start = 0; start < order.Length; start += batchSize)
            {
                int b = Math.Min(batchSize, order.Length - start);
                var x = new float[b * f];
                for (int i = 0; i < b; i++)
                    table.Features.AsSpan(order[start + i] * f, f).CopyTo(x.AsSpan(i * f, f));
                Tensor y;
                if (table.ClassLabels is { } classes)
                {
                    var labels = new long[b];
                    for (int i = 0; i < b; i++) labels[i] = classes[order[start + i]];
                    y = tensor(labels, [b]);
                }
                else
                {
                    var labels = new float[b];
                    for (int i = 0; i < b; i++) labels[i] = table.RegressionLabels![order[start + i]];
                    y = tensor(labels, [b]);
                }
                yield return [tensor(x, [b, f]), y];
            }
        }

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }
}
