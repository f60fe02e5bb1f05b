using Lightning.Benchmarks;

var benchmarks = new Dictionary<string, Action<string[]>>
{
    ["parity"] = ParityBenchmark.Run,
    ["precision"] = PrecisionBenchmark.Run,
    ["dp"] = DataParallelBenchmark.Run,
    ["serving"] = ServingBenchmark.Run,
    ["onnx"] = OnnxBenchmark.Run,
};

if (args.Length == 0 || !benchmarks.TryGetValue(args[0], out var run))
{
    Console.Error.WriteLine($"usage: dotnet run -c Release --project bench/Lightning.Benchmarks -- <{string.Join('|', benchmarks.Keys)}>");
    return 2;
}
run(args[1..]);
return 0;
