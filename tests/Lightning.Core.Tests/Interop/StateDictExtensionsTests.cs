using System.Text.Json;
using Lightning.Interop;
using Lightning.Testing;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Interop;

/// <summary>PyTorch's and safetensors' files in and out of TorchSharp modules, against files PyTorch wrote.</summary>
public class StateDictExtensionsTests
{
    [Theory]
    [InlineData("dtypes.pt")]
    [InlineData("dtypes.safetensors")]
    public void PyTorchWrittenFile_LoadsEveryDtypeWithTheValuesPyTorchWrote(string file)
    {
        var tensors = StateDictExtensions.ReadStateDict(Fixtures.Path(file)).ToDictionary(e => e.Name, e => e.Value);
        var expected = Fixtures.Expected.GetProperty("dtypes").EnumerateObject()
            .Where(e => file.EndsWith(".pt") || e.Name is not ("transposed" or "sliced")).ToList();

        Assert.Equal(expected.Select(e => e.Name).Order(), tensors.Keys.Order());
        foreach (var entry in expected)
        {
            var tensor = tensors[entry.Name];
            Assert.Equal(entry.Value.GetProperty("dtype").GetString(), DTypeName(tensor.dtype));
            Assert.Equal(entry.Value.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()), tensor.shape);
            Assert.Equal(Fixtures.Values(entry.Value.GetProperty("values")), tensor.to(float64).data<double>().ToArray());
        }
    }

    [Fact]
    public void PyTorchStateDict_LoadsIntoTheSameSequential()
    {
        var model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2));

        var result = model.LoadStateDict(Fixtures.Path("mlp.pt"));

        Assert.Empty(result.MissingKeys);
        foreach (var entry in Fixtures.Expected.GetProperty("mlp").EnumerateObject())
            Assert.Equal(Fixtures.Values(entry.Value), model.state_dict()[entry.Name].to(float64).data<double>().ToArray());
    }

    [Fact]
    public void MismatchedModule_ErrorNamesEveryMissingUnexpectedAndMisshapedKeyWithShapes()
    {
        var model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(3, 2), nn.Linear(2, 2));
        var path = Fixtures.Path("mlp.pt");

        var error = Assert.Throws<InvalidDataException>(() => model.LoadStateDict(path, keyMap: k => k == "2.bias" ? "extra.bias" : k));

        Assert.Contains(path, error.Message);
        Assert.Contains("missing key(s) (in the module, not in the file): 0.weight [5, 4], 0.bias [5], 2.bias [2], 3.weight [2, 2], 3.bias [2]", error.Message);
        Assert.Contains("unexpected key(s) (in the file, not in the module): 2.bias [2]", error.Message);
        Assert.Contains("0.weight: [3, 4] in the file, [5, 4] in the module", error.Message);
        Assert.Contains("0.bias: [3] in the file, [5] in the module", error.Message);
    }

    [Fact]
    public void NotStrict_LoadsTheMatchingKeysAndReturnsTheOthers()
    {
        var model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2), nn.Linear(2, 2));

        var result = model.LoadStateDict(Fixtures.Path("mlp.pt"), strict: false, keyMap: k => k.StartsWith("2.") ? null : k);

        Assert.Equal(["2.weight", "2.bias", "3.weight", "3.bias"], result.MissingKeys);
        Assert.Empty(result.UnexpectedKeys);
        Assert.Equal(Fixtures.Values(Fixtures.Expected.GetProperty("mlp").GetProperty("0.weight")),
            model.state_dict()["0.weight"].to(float64).data<double>().ToArray());
    }

    [Fact]
    public void BadFiles_ErrorsNameTheFileAndWhatIsWrong()
    {
        using var root = new TempDirectory();
        var pt = File.ReadAllBytes(Fixtures.Path("mlp.pt"));
        var truncated = root.Combine("truncated.pt");
        File.WriteAllBytes(truncated, pt[..(pt.Length / 2)]);
        var text = root.Combine("notes.pt");
        File.WriteAllText(text, "these are not weights");
        var st = File.ReadAllBytes(Fixtures.Path("dtypes.safetensors"));
        var shortData = root.Combine("short.safetensors");
        File.WriteAllBytes(shortData, st[..^10]);
        var hugeHeader = root.Combine("huge.safetensors");
        File.WriteAllBytes(hugeHeader, [.. BitConverter.GetBytes(1L << 40), .. "{}"u8]);
        var model = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2));

        Assert.Matches($"'{truncated}' is not a readable PyTorch file: .*truncated", Assert.Throws<InvalidDataException>(() => model.LoadStateDict(truncated)).Message);
        Assert.Contains($"'{text}' is neither a PyTorch file", Assert.Throws<InvalidDataException>(() => model.LoadStateDict(text)).Message);
        Assert.Matches($"'{shortData}' is not a readable safetensors file: tensor '.*' ends at byte \\d+ of the data but the file holds \\d+ bytes",
            Assert.Throws<InvalidDataException>(() => model.LoadStateDict(shortData)).Message);
        Assert.Contains($"'{hugeHeader}' is not a readable safetensors file: its header length is 1099511627776 bytes",
            Assert.Throws<InvalidDataException>(() => model.LoadStateDict(hugeHeader)).Message);
    }

    [Fact]
    public void TensorDataShorterThanThePickleSays_IsAnErrorNamingTheEntry()
    {
        using var root = new TempDirectory();
        var path = root.Combine("short-data.pt");
        using (var source = System.IO.Compression.ZipFile.OpenRead(Fixtures.Path("mlp.pt")))
        using (var target = System.IO.Compression.ZipFile.Open(path, System.IO.Compression.ZipArchiveMode.Create))
            foreach (var entry in source.Entries)
            {
                using var input = entry.Open();
                using var output = target.CreateEntry(entry.FullName).Open();
                var bytes = new MemoryStream();
                input.CopyTo(bytes);
                // Every storage loses its last 4 bytes.
                output.Write(entry.FullName.Contains("/data/") ? bytes.ToArray()[..^4] : bytes.ToArray());
            }

        var error = Assert.Throws<InvalidDataException>(() => nn.Linear(4, 3).LoadStateDict(path));

        Assert.Matches($"'{path}' is not a readable PyTorch file: tensor data 'data/\\d+' has \\d+ bytes but the pickle says \\d+ Float32 elements", error.Message);
    }

    /// <summary>PyTorch's <c>layer_norm</c> and <c>out_proj</c> as .NET names: a camelCase field and an underscore-prefixed one.</summary>
    private sealed class DotNetNamedBlock : nn.Module
    {
        public DotNetNamedBlock() : base(nameof(DotNetNamedBlock)) => RegisterComponents();

        private readonly TorchSharp.Modules.LayerNorm layerNorm = nn.LayerNorm(3);
        private readonly TorchSharp.Modules.Linear _outProj = nn.Linear(3, 2);
    }

    [PyTorchFact]
    public void PyTorchKeys_MatchIgnoringUnderscoresAndCasePerPart_AndTorchCompilesPrefixIsDropped()
    {
        using var root = new TempDirectory();
        // The same random weights saved plain and as torch.compile's wrapper names them (its state_dict adds "_orig_mod.").
        const string script = """
            import json, sys, torch
            torch.manual_seed(0)
            block = torch.nn.Module()
            block.layer_norm = torch.nn.LayerNorm(3)
            block.out_proj = torch.nn.Linear(3, 2)
            with torch.no_grad():
                for p in block.parameters(): p.uniform_(-1, 1)
            state = block.state_dict()
            torch.save(state, sys.argv[1])
            torch.save({"_orig_mod." + k: v for k, v in state.items()}, sys.argv[2])
            print(json.dumps({k: v.to(torch.float64).reshape(-1).tolist() for k, v in state.items()}))
            """;
        var written = JsonDocument.Parse(PyTorchFactAttribute.Run(script, root.Combine("plain.pt"), root.Combine("compiled.pt"))).RootElement;
        var expected = new Dictionary<string, string>
        {
            ["layerNorm.weight"] = "layer_norm.weight", ["layerNorm.bias"] = "layer_norm.bias",
            ["_outProj.weight"] = "out_proj.weight", ["_outProj.bias"] = "out_proj.bias",
        };

        foreach (var file in new[] { "plain.pt", "compiled.pt" })
        {
            var module = new DotNetNamedBlock();
            Assert.Equal(expected.Keys.Order(), module.state_dict().Keys.Order());

            var result = module.LoadStateDict(root.Combine(file));

            Assert.Empty(result.MissingKeys);
            Assert.Empty(result.UnexpectedKeys);
            foreach (var (key, pyTorchKey) in expected)
                Assert.Equal(Fixtures.Values(written.GetProperty(pyTorchKey)), module.state_dict()[key].to(float64).data<double>().ToArray());
        }
    }

    [PyTorchFact]
    public void LegacyPyTorchFile_IsRefusedSayingHowToSaveItAgain()
    {
        using var root = new TempDirectory();
        var path = root.Combine("legacy.pt");
        PyTorchFactAttribute.Run("""
            import sys, torch
            torch.save(torch.nn.Linear(4, 3).state_dict(), sys.argv[1], _use_new_zipfile_serialization=False)
            """, path);

        var error = Assert.Throws<InvalidDataException>(() => nn.Linear(4, 3).LoadStateDict(path));
        var checkpointError = Assert.Throws<InvalidDataException>(() => Lightning.Checkpoints.Checkpoint.Load(path));

        Assert.Equal($"'{path}' was saved with PyTorch's legacy format (torch.save(..., _use_new_zipfile_serialization=False)); " +
                     "load it in Python and save it again with torch.save's default format.", error.Message);
        Assert.Contains(path, checkpointError.Message);
        Assert.Contains("it is a PyTorch file in the legacy (pre-1.6, non-zip) format; load it in Python and save it again with torch.save's default format",
            checkpointError.Message);
    }

    /// <summary>A module with a buffer of every dtype, a non-contiguous one and a Linear, with values that never change.</summary>
    private sealed class EveryDtype : nn.Module
    {
        public EveryDtype(bool blank = false) : base(nameof(EveryDtype))
        {
            var values = arange(-6, 6, float64).reshape(3, 4) / 4;
            if (blank) values = zeros_like(values);
            foreach (var (name, dtype) in Dtypes) register_buffer(name, (values * (dtype is ScalarType.Float32 or ScalarType.Float64 or ScalarType.Float16 or ScalarType.BFloat16 ? 1 : 4)).to(dtype));
            register_buffer("transposed", (blank ? zeros(3, 4) : arange(12, float32).reshape(3, 4)).t());
            register_module("linear", linear);
            using (no_grad())
            {
                linear.weight!.copy_(blank ? zeros(2, 3) : arange(6, float32).reshape(2, 3) / 10);
                linear.bias!.copy_(blank ? zeros(2) : tensor(new[] { 0.5f, -0.5f }));
            }
        }

        private readonly TorchSharp.Modules.Linear linear = nn.Linear(3, 2);

        public static readonly (string, ScalarType)[] Dtypes =
        [
            ("f32", float32), ("f64", float64), ("f16", float16), ("bf16", bfloat16), ("i8", int8), ("i16", int16),
            ("i32", int32), ("i64", int64), ("u8", uint8), ("bool", @bool),
        ];
    }

    [Theory]
    [InlineData("saved_by_lightning_net.pt")]
    [InlineData("saved_by_lightning_net.safetensors")]
    public void SaveStateDict_WritesTheBytesOfTheCommittedReverseFixture(string name)
    {
        using var root = new TempDirectory();
        var path = root.Combine(name);
        var module = new EveryDtype();
        Assert.False(module.state_dict()["transposed"].is_contiguous());

        module.SaveStateDict(path);
        // LIGHTNING_WRITE_FIXTURES=1 refreshes the committed files after a deliberate format change.
        if (Environment.GetEnvironmentVariable("LIGHTNING_WRITE_FIXTURES") == "1") File.Copy(path, Fixtures.SourcePath(name), overwrite: true);

        Assert.Equal(File.ReadAllBytes(Fixtures.Path(name)), File.ReadAllBytes(path));
    }

    [Theory]
    [InlineData("saved_by_lightning_net.pt")]
    [InlineData("saved_by_lightning_net.safetensors")]
    public void CommittedReverseFixture_LoadsBackWithTheSavedValues(string name)
    {
        var expected = new EveryDtype();
        var loaded = new EveryDtype(blank: true);

        loaded.LoadStateDict(Fixtures.Path(name));

        foreach (var (key, value) in expected.state_dict())
            Assert.True(TestTrainer.Identical(value, loaded.state_dict()[key]), key);
    }

    [PyTorchFact]
    public void SavedFiles_LoadInPyTorch()
    {
        using var root = new TempDirectory();
        var module = new EveryDtype();
        module.SaveStateDict(root.Combine("m.pt"));
        module.SaveStateDict(root.Combine("m.safetensors"));
        // torch.load for the .pt; the safetensors file is read by the format's definition (the safetensors module is not packaged for Debian).
        const string script = """
            import json, struct, sys, torch
            codes = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "I64": torch.int64,
                     "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}
            def safetensors(path):
                raw = open(path, "rb").read()
                n = struct.unpack("<Q", raw[:8])[0]
                header = json.loads(raw[8:8 + n])
                out = {}
                for k, v in header.items():
                    if k == "__metadata__": continue
                    b, e = v["data_offsets"]
                    out[k] = torch.frombuffer(bytearray(raw[8 + n + b:8 + n + e]) or bytearray(1), dtype=codes[v["dtype"]])[:0 if b == e else None].reshape(v["shape"])
                return out
            show = lambda d: {k: {"dtype": str(t.dtype), "shape": list(t.shape), "values": t.to(torch.float64).reshape(-1).tolist()} for k, t in d.items()}
            print(json.dumps({"pt": show(torch.load(sys.argv[1])), "safetensors": show(safetensors(sys.argv[2]))}))
            """;
        var stdout = PyTorchFactAttribute.Run(script, root.Combine("m.pt"), root.Combine("m.safetensors"));

        var read = JsonDocument.Parse(stdout).RootElement;
        foreach (var format in new[] { "pt", "safetensors" })
        {
            var tensors = read.GetProperty(format);
            foreach (var (key, value) in module.state_dict())
            {
                var seen = tensors.GetProperty(key);
                Assert.Equal("torch." + DTypeName(value.dtype), seen.GetProperty("dtype").GetString());
                Assert.Equal(value.shape, seen.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()));
                Assert.Equal(value.to(float64).contiguous().data<double>().ToArray(), Fixtures.Values(seen.GetProperty("values")));
            }
        }
    }

    private static string DTypeName(ScalarType dtype) => dtype switch
    {
        ScalarType.Float32 => "float32", ScalarType.Float64 => "float64", ScalarType.Float16 => "float16",
        ScalarType.BFloat16 => "bfloat16", ScalarType.Int8 => "int8", ScalarType.Int16 => "int16", ScalarType.Int32 => "int32",
        ScalarType.Int64 => "int64", ScalarType.Byte => "uint8", ScalarType.Bool => "bool", _ => dtype.ToString(),
    };
}
