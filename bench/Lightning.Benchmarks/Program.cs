using System.Reflection;

// Each benchmark is a static class with `const string Name` and `static void Run(string[] args)`.
var benchmarks = typeof(Program).Assembly.GetTypes()
    .Where(t => t is { IsAbstract: true, IsSealed: true } && t.GetField("Name", BindingFlags.Public | BindingFlags.Static) is { IsLiteral: true })
    .ToDictionary(
        t => (string)t.GetField("Name")!.GetRawConstantValue()!,
        t => t.GetMethod("Run", [typeof(string[])])!.CreateDelegate<Action<string[]>>());

if (args.Length == 0 || !benchmarks.TryGetValue(args[0], out var run))
{
    Console.Error.WriteLine($"usage: dotnet run -c Release --project bench/Lightning.Benchmarks -- <{string.Join('|', benchmarks.Keys.Order())}>");
    return 2;
}
run(args[1..]);
return Environment.ExitCode;
