using Microsoft.ML;
using Microsoft.ML.Data;
using static TorchSharp.torch;

namespace Lightning.MLNet;

/// <summary>
/// The input and label columns of an <see cref="IDataView"/>, read once through a row cursor (typed getters and reused
/// <see cref="VBuffer{T}"/>s, so no value is boxed) into tensors that every epoch's batches are gathered from. Rows with
/// a missing label (key 0, or NaN) are skipped, as ML.NET's trainers do. A Boolean label (binary classification) becomes
/// a float32 target of 0 or 1.
/// </summary>
internal sealed class DataViewTable : IDisposable
{
    private DataViewTable(IReadOnlyList<InputColumn> columns, IReadOnlyList<Tensor> inputs, IReadOnlyList<Tensor?> lengths, Tensor labels, int rows)
    {
        Columns = columns;
        Inputs = inputs;
        Lengths = lengths;
        Labels = labels;
        Rows = rows;
    }

    public IReadOnlyList<InputColumn> Columns { get; }

    /// <summary>One tensor per input column, in order: float32 or int64 [rows, width] (variable length: padded to the longest row or MaxLength).</summary>
    public IReadOnlyList<Tensor> Inputs { get; }

    /// <summary>Per input column, each row's length, int64 [rows], for a variable-length column; else null.</summary>
    public IReadOnlyList<Tensor?> Lengths { get; }

    /// <summary>Zero-based class indices (int64 [rows], multiclass) or targets (float32 [rows], regression; 0/1 binary).</summary>
    public Tensor Labels { get; }

    public int Rows { get; }

    public void Dispose()
    {
        foreach (var input in Inputs) input.Dispose();
        foreach (var length in Lengths) length?.Dispose();
        Labels.Dispose();
    }

    public static DataViewTable Read(IDataView data, IReadOnlyList<InputColumn> inputs, string labelColumnName, HeadKind task)
    {
        bool classLabels = task == HeadKind.Multiclass, booleanLabels = task == HeadKind.Binary;
        var labelColumn = data.Schema[labelColumnName];
        var capacity = data.GetRowCount() is long n and > 0 and < int.MaxValue ? (int)n : 256;
        var classes = classLabels ? new long[capacity] : null;
        var targets = classLabels ? null : new float[capacity];
        int rows = 0;

        using var cursor = data.GetRowCursor([.. inputs.Select(i => data.Schema[i.ReadName]), labelColumn]);
        var readers = inputs.Select(i => VectorColumnReader.Create(cursor, i, capacity)).ToArray();
        ValueGetter<uint>? keyGetter = classLabels ? cursor.GetGetter<uint>(labelColumn) : null;
        ValueGetter<float>? targetGetter = classLabels || booleanLabels ? null : cursor.GetGetter<float>(labelColumn);
        ValueGetter<bool>? booleanGetter = booleanLabels ? cursor.GetGetter<bool>(labelColumn) : null;
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
            if (rows == capacity)
            {
                capacity *= 2;
                foreach (var reader in readers) reader.Resize(capacity);
                if (classes is not null) Array.Resize(ref classes, capacity);
                if (targets is not null) Array.Resize(ref targets, capacity);
            }
            foreach (var reader in readers) reader.Read(rows, cursor.Position);
            if (classes is not null) classes[rows] = key - 1;
            else targets![rows] = target;
            rows++;
        }
        var labels = classes is not null ? tensor(classes.AsSpan(0, rows).ToArray(), [rows]) : tensor(targets.AsSpan(0, rows).ToArray(), [rows]);
        return new DataViewTable(inputs, [.. readers.Select(r => r.ToTensor(rows))], [.. readers.Select(r => r.Lengths(rows))], labels, rows);
    }

    /// <summary>
    /// Batches of [input 1, …, input n ([b, width] each; a variable-length column as its values and mask [b, L], L the
    /// batch's longest row or MaxLength), labels [b] (int64 classes or float32 targets, 0/1 for binary)].
    /// </summary>
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
                // Gathered natively from the table's tensors, with no managed copy of the inputs. As with TorchSharp's
                // DataLoader, a batch is disposed when the next is asked for, so an epoch leaves nothing to the GC.
                Tensor[] batch;
                using (var scope = NewDisposeScope())
                {
                    var index = tensor(order.AsSpan(start, Math.Min(batchSize, order.Length - start)).ToArray());
                    batch = [.. table.Columns.SelectMany((column, i) => Arguments(table, i, index)), table.Labels.index_select(0, index)];
                    foreach (var t in batch) t.MoveToOuterDisposeScope();
                }
                try
                {
                    yield return batch;
                }
                finally
                {
                    foreach (var t in batch) t.Dispose();
                }
            }
        }

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();

        /// <summary>Column <paramref name="i"/>'s forward arguments for the rows <paramref name="index"/>: its values (and mask).</summary>
        private static IEnumerable<Tensor> Arguments(DataViewTable table, int i, Tensor index)
        {
            var values = table.Inputs[i].index_select(0, index);
            if (table.Lengths[i] is not { } allLengths) return [values];
            var lengths = allLengths.index_select(0, index);
            long length = table.Columns[i].MaxLength ?? lengths.max().item<long>();
            var mask = arange(length, ScalarType.Int64).unsqueeze(0).lt(lengths.unsqueeze(1)).to_type(ScalarType.Int64);
            return [values.narrow(1, 0, length).contiguous(), mask];
        }
    }
}
