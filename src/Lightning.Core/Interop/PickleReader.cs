using System.Buffers.Binary;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Interop;

/// <summary>
/// Reads the pickle inside a PyTorch file (<c>data.pkl</c>) into plain .NET values: int → long, float → double, str →
/// string, tuple → object?[], list → List, dict and OrderedDict → Dictionary (insertion order kept), tensors → Tensor,
/// other classes → <see cref="PythonObject"/>. It runs no Python code: only the opcodes <c>torch.save</c> writes
/// (protocols 2 to 5) and the few torch globals that rebuild tensors are understood, so a crafted file cannot execute
/// anything; an unknown opcode is an error naming the file.
/// </summary>
internal sealed class PickleReader
{
    private readonly BinaryReader _reader;
    private readonly string _source;
    private readonly Func<string, ScalarType, long, Tensor> _loadStorage;
    private readonly List<object?> _stack = [];
    private readonly List<int> _marks = [];
    private readonly Dictionary<long, object?> _memo = new();

    /// <param name="pickle">The pickle bytes.</param>
    /// <param name="source">Names the file in errors.</param>
    /// <param name="loadStorage">Reads a storage (its archive key, dtype and element count) as a flat tensor.</param>
    public PickleReader(Stream pickle, string source, Func<string, ScalarType, long, Tensor> loadStorage)
    {
        _reader = new BinaryReader(pickle, Encoding.UTF8, leaveOpen: true);
        _source = source;
        _loadStorage = loadStorage;
    }

    private sealed record Global(string Module, string Name)
    {
        public string FullName => $"{Module}.{Name}";
    }

    private sealed record Storage(Tensor Flat);

    private sealed class Mark;

    public object? Load()
    {
        try
        {
            while (true)
            {
                var op = _reader.ReadByte();
                if (op == '.') return Pop();
                Dispatch(op);
            }
        }
        catch (EndOfStreamException e)
        {
            throw Bad("the pickle ends early (is the file truncated?)", e);
        }
        catch (Exception e) when (e is InvalidCastException or ArgumentOutOfRangeException or KeyNotFoundException)
        {
            throw Bad($"the pickle is malformed ({e.Message})", e);
        }
    }

    private void Dispatch(byte op)
    {
        switch (op)
        {
            case 0x80: _reader.ReadByte(); break;                                    // PROTO
            case 0x95: _reader.ReadInt64(); break;                                   // FRAME
            case (byte)'}': Push(new Dictionary<object, object?>()); break;         // EMPTY_DICT
            case (byte)']': Push(new List<object?>()); break;                        // EMPTY_LIST
            case (byte)')': Push(Array.Empty<object?>()); break;                     // EMPTY_TUPLE
            case (byte)'(': _marks.Add(_stack.Count); break;                         // MARK
            case (byte)'N': Push(null); break;
            case 0x88: Push(true); break;
            case 0x89: Push(false); break;
            case (byte)'J': Push((long)_reader.ReadInt32()); break;                  // BININT
            case (byte)'K': Push((long)_reader.ReadByte()); break;                   // BININT1
            case (byte)'M': Push((long)_reader.ReadUInt16()); break;                 // BININT2
            case 0x8a: Push(ReadLong(_reader.ReadByte())); break;                    // LONG1
            case 0x8b: Push(ReadLong(checked((int)_reader.ReadUInt32()))); break;    // LONG4
            case (byte)'G': Push(BinaryPrimitives.ReadDoubleBigEndian(_reader.ReadBytes(8))); break; // BINFLOAT
            case (byte)'X': Push(ReadString(checked((int)_reader.ReadUInt32()))); break;  // BINUNICODE
            case 0x8c: Push(ReadString(_reader.ReadByte())); break;                  // SHORT_BINUNICODE
            case 0x8d: Push(ReadString(checked((int)_reader.ReadInt64()))); break;   // BINUNICODE8
            case (byte)'T': Push(ReadString(_reader.ReadInt32(), Encoding.Latin1)); break; // BINSTRING
            case (byte)'U': Push(ReadString(_reader.ReadByte(), Encoding.Latin1)); break;  // SHORT_BINSTRING
            case (byte)'B': Push(ReadBytes(checked((int)_reader.ReadUInt32()))); break;    // BINBYTES
            case (byte)'C': Push(ReadBytes(_reader.ReadByte())); break;                    // SHORT_BINBYTES
            case 0x8e: Push(ReadBytes(checked((int)_reader.ReadInt64()))); break;          // BINBYTES8
            case (byte)'t': Push(PopMark().ToArray()); break;                        // TUPLE
            case 0x85: Push(new[] { Pop() }); break;                                 // TUPLE1
            case 0x86: { var b = Pop(); var a = Pop(); Push(new[] { a, b }); break; } // TUPLE2
            case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); Push(new[] { a, b, c }); break; } // TUPLE3
            case (byte)'l': Push(PopMark()); break;                                  // LIST
            case (byte)'d': Push(ToDict(PopMark())); break;                          // DICT
            case (byte)'a': { var v = Pop(); Append(Peek(), [v]); break; }           // APPEND
            case (byte)'e': { var items = PopMark(); Append(Peek(), items); break; } // APPENDS
            case (byte)'s': { var v = Pop(); var k = Pop(); SetItems(Peek(), [k, v]); break; } // SETITEM
            case (byte)'u': { var items = PopMark(); SetItems(Peek(), items); break; }        // SETITEMS
            case (byte)'q': _memo[_reader.ReadByte()] = Peek(); break;               // BINPUT
            case (byte)'r': _memo[_reader.ReadUInt32()] = Peek(); break;             // LONG_BINPUT
            case 0x94: _memo[_memo.Count] = Peek(); break;                           // MEMOIZE
            case (byte)'h': Push(_memo[_reader.ReadByte()]); break;                  // BINGET
            case (byte)'j': Push(_memo[_reader.ReadUInt32()]); break;                // LONG_BINGET
            case (byte)'c': Push(new Global(ReadLine(), ReadLine())); break;         // GLOBAL
            case 0x93: { var name = (string)Pop()!; Push(new Global((string)Pop()!, name)); break; } // STACK_GLOBAL
            case (byte)'Q': Push(PersistentLoad(Pop())); break;                      // BINPERSID
            case (byte)'R': { var args = (object?[])Pop()!; Push(Call(Pop(), args)); break; } // REDUCE
            case 0x81: { var args = (object?[])Pop()!; Push(Call(Pop(), args)); break; }     // NEWOBJ
            case (byte)'b': { var state = Pop(); Build(Peek(), state); break; }      // BUILD
            case (byte)'0': Pop(); break;                                            // POP
            case (byte)'1': PopMark(); break;                                        // POP_MARK
            case (byte)'2': Push(Peek()); break;                                     // DUP
            default: throw Bad($"it uses pickle opcode 0x{op:x2}, which PyTorch's torch.save does not write");
        }
    }

    private object? ReadLong(int length)
    {
        var bytes = ReadBytes(length);
        return length == 0 ? 0L : (long)new System.Numerics.BigInteger(bytes, isUnsigned: false, isBigEndian: false);
    }

    private string ReadString(int length, Encoding? encoding = null) => (encoding ?? Encoding.UTF8).GetString(ReadBytes(length));

    private byte[] ReadBytes(int length)
    {
        var bytes = _reader.ReadBytes(length);
        if (bytes.Length != length) throw new EndOfStreamException();
        return bytes;
    }

    private string ReadLine()
    {
        var line = new StringBuilder();
        for (var b = _reader.ReadByte(); b != '\n'; b = _reader.ReadByte()) line.Append((char)b);
        return line.ToString();
    }

    private void Push(object? value) => _stack.Add(value);

    private object? Peek() => _stack.Count > 0 ? _stack[^1] : throw Bad("the pickle pops from an empty stack");

    private object? Pop()
    {
        var value = Peek();
        _stack.RemoveAt(_stack.Count - 1);
        return value;
    }

    private List<object?> PopMark()
    {
        if (_marks.Count == 0) throw Bad("the pickle closes a mark it never opened");
        var start = _marks[^1];
        _marks.RemoveAt(_marks.Count - 1);
        var items = _stack.GetRange(start, _stack.Count - start);
        _stack.RemoveRange(start, _stack.Count - start);
        return items;
    }

    private static Dictionary<object, object?> ToDict(List<object?> items)
    {
        var dict = new Dictionary<object, object?>();
        SetItems(dict, items);
        return dict;
    }

    private static void SetItems(object? target, List<object?> items)
    {
        var dict = target switch
        {
            Dictionary<object, object?> d => d,
            PythonObject o => o.Items,
            _ => throw new InvalidCastException($"SETITEMS on a {target?.GetType().Name ?? "None"}"),
        };
        for (int i = 0; i + 1 < items.Count; i += 2) dict[Key(items[i])] = items[i + 1];
    }

    // Tuples as keys compare by reference otherwise; optimizer state uses ints and strings, which compare by value.
    private static object Key(object? key) => key ?? "None";

    private static void Append(object? target, List<object?> items)
    {
        switch (target)
        {
            case List<object?> list: list.AddRange(items); break;
            case PythonObject o: o.ListItems.AddRange(items); break;
            default: throw new InvalidCastException($"APPENDS on a {target?.GetType().Name ?? "None"}");
        }
    }

    private static void Build(object? target, object? state)
    {
        switch (target)
        {
            case PythonObject o: o.State = state; break;
            // An OrderedDict's state (a state_dict's _metadata) and a tensor's are not needed to load weights.
            case Dictionary<object, object?> or Tensor: break;
            default: throw new InvalidCastException($"BUILD on a {target?.GetType().Name ?? "None"}");
        }
    }

    private object PersistentLoad(object? pid)
    {
        // torch.save: ("storage", storage type, key in the archive, location, number of elements).
        if (pid is not object?[] { Length: >= 5 } tuple || tuple[0] as string != "storage")
            throw Bad("it holds a persistent id that is not a tensor storage");
        var dtype = tuple[1] is Global storageType ? StorageDType(storageType.Name)
            : throw Bad("a tensor storage has no storage type");
        var key = tuple[2] as string ?? throw Bad("a tensor storage has no key");
        var numel = tuple[4] is long n ? n : throw Bad($"tensor storage '{key}' has no element count");
        return new Storage(_loadStorage(key, dtype, numel));
    }

    private ScalarType StorageDType(string name) => name switch
    {
        "FloatStorage" => ScalarType.Float32,
        "DoubleStorage" => ScalarType.Float64,
        "HalfStorage" => ScalarType.Float16,
        "BFloat16Storage" => ScalarType.BFloat16,
        "LongStorage" => ScalarType.Int64,
        "IntStorage" => ScalarType.Int32,
        "ShortStorage" => ScalarType.Int16,
        "CharStorage" => ScalarType.Int8,
        "ByteStorage" => ScalarType.Byte,
        "BoolStorage" => ScalarType.Bool,
        "ComplexFloatStorage" => ScalarType.ComplexFloat32,
        "ComplexDoubleStorage" => ScalarType.ComplexFloat64,
        _ => throw Bad($"it holds a tensor of storage type torch.{name}, which TorchSharp has no dtype for " +
                       "(float32/64/16, bfloat16, int8/16/32/64, uint8, bool and complex are read)"),
    };

    private object? Call(object? callable, object?[] args)
    {
        if (callable is not Global global) throw Bad($"the pickle calls a {callable?.GetType().Name ?? "None"}, not a class or function");
        switch (global.FullName)
        {
            case "torch._utils._rebuild_tensor_v2":
            case "torch._utils._rebuild_tensor":
                return RebuildTensor(args);
            case "torch._utils._rebuild_parameter":
            case "torch._utils._rebuild_parameter_with_state":
                return args[0];
            case "collections.OrderedDict":
                return args.Length > 0 && args[0] is List<object?> pairs
                    ? ToDict(pairs.SelectMany(p => (object?[])p!).ToList())
                    : new Dictionary<object, object?>();
            case "builtins.set" or "builtins.frozenset" or "__builtin__.set":
                return args.Length > 0 && args[0] is List<object?> items ? items : new List<object?>();
            case "_codecs.encode":
                return Encoding.Latin1.GetBytes((string)args[0]!);
            case "copyreg._reconstructor" or "copy_reg._reconstructor":
                return new PythonObject(((Global)args[0]!).FullName, []);
            case "torch.device":
                return string.Join(':', args);
            default:
                return new PythonObject(global.FullName, args);
        }
    }

    private Tensor RebuildTensor(object?[] args)
    {
        // (storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata])
        var storage = args[0] as Storage ?? throw Bad("a tensor is rebuilt from something that is not a storage");
        var offset = (long)args[1]!;
        var size = ((object?[])args[2]!).Select(d => (long)d!).ToArray();
        var stride = ((object?[])args[3]!).Select(d => (long)d!).ToArray();
        long last = offset;
        for (int i = 0; i < size.Length; i++)
        {
            if (size[i] < 0 || stride[i] < 0) throw Bad($"a tensor has a negative size or stride ({Shape(size)})");
            if (size[i] == 0) { last = -1; break; }
            last += (size[i] - 1) * stride[i];
        }
        var numel = storage.Flat.numel();
        if (last >= numel)
            throw Bad($"a tensor of shape {Shape(size)} at offset {offset} reaches element {last} of a storage of {numel} elements");
        // A copy: the file's view may share its storage with other tensors or be non-contiguous.
        using var scope = NewDisposeScope();
        return storage.Flat.as_strided(size, stride, offset).contiguous().clone().MoveToOuterDisposeScope();
    }

    internal static string Shape(long[] shape) => $"[{string.Join(", ", shape)}]";

    private InvalidDataException Bad(string reason, Exception? inner = null) =>
        new($"'{_source}' is not a readable PyTorch file: {reason}.", inner);
}
