using System.CommandLine;
using System.Globalization;
using System.Reflection;
using System.Runtime.ExceptionServices;
using Lightning.Checkpoints;
using Lightning.Onnx;
using static TorchSharp.torch;

namespace Lightning;

/// <summary>
/// Lightning's <c>LightningCLI</c>: one line in <c>Main</c> gives a program the subcommands <c>fit</c>, <c>validate</c>,
/// <c>test</c>, <c>predict</c> and <c>export</c> (ONNX), configured by YAML files (<c>--config</c>) and dotted settings
/// (<c>--trainer.max_epochs=5</c>, <c>--model.lr=1e-3</c>, <c>--data.batch_size=64</c>, <c>--ckpt_path=last</c>). The
/// <c>trainer</c> section sets <see cref="TrainerOptions"/> (callbacks and loggers by <c>class_path</c> and
/// <c>init_args</c>); <c>model</c> and <c>data</c> set the constructor arguments of the module and the datamodule.
/// <c>--print_config</c> prints the whole configuration, which <c>--config</c> reads back; <c>--help</c> lists every
/// setting with its XML documentation.
/// </summary>
/// <example>
/// <code>
/// return LightningCli.Run&lt;LitAutoEncoder, FashionMnistDataModule&gt;(args);
/// // dotnet run -- fit --config config.yaml --trainer.max_epochs=3
/// </code>
/// </example>
public static class LightningCli
{
    private static readonly string[] s_sections = ["trainer", "model", "data", "ckpt_path", "seed_everything", "export"];

    /// <summary>Parses <paramref name="args"/>, runs the subcommand and returns the exit code: 0 on success, 1 when the run fails, 2 for a bad command line or config.</summary>
    public static int Run<TModel, TData>(string[] args) where TModel : LightningModule where TData : LightningDataModule =>
        Run<TModel, TData>(args, Console.Out, Console.Error);

    /// <summary>As <see cref="Run{TModel, TData}(string[])"/>, writing to <paramref name="output"/> and <paramref name="error"/>.</summary>
    public static int Run<TModel, TData>(string[] args, TextWriter output, TextWriter error) where TModel : LightningModule where TData : LightningDataModule
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        var batch = BatchType(typeof(TModel));
        if (!typeof(LightningDataModule<>).MakeGenericType(batch).IsAssignableFrom(typeof(TData)))
            throw new ArgumentException($"{typeof(TData).Name} must be a LightningDataModule<{batch.Name}>, the batch type of {typeof(TModel).Name}.", nameof(TData));

        var root = new RootCommand($"Train and use {typeof(TModel).Name} on {typeof(TData).Name} (Lightning.NET's LightningCLI).");
        foreach (var (name, description) in new[]
                 {
                     ("fit", "Train the model (Trainer.Fit)."),
                     ("validate", "Run one evaluation epoch on the validation data (Trainer.Validate)."),
                     ("test", "Run one evaluation epoch on the test data (Trainer.Test)."),
                     ("predict", "Run the model on the prediction data (Trainer.Predict)."),
                     ("export", "Write the model as ONNX (weights from ckpt_path when given), traced on the first prediction batch."),
                 })
            root.Subcommands.Add(Subcommand<TModel, TData>(name, description, batch, output, error));
        return root.Parse(args).Invoke(new InvocationConfiguration { Output = output, Error = error });
    }

    private static Command Subcommand<TModel, TData>(string name, string description, Type batch, TextWriter output, TextWriter error)
    {
        var command = new Command(name, description);
        var configFiles = new Option<string[]>("--config") { Description = "A YAML config file; several are merged in order, and settings given on the command line win." };
        var print = new Option<bool>("--print_config") { Description = "Print the whole configuration as YAML (readable with --config) and exit." };
        command.Options.Add(configFiles);
        command.Options.Add(print);
        var settings = new List<(string Key, Option<string?> Option)>();
        void Add(string key, string? help)
        {
            var option = new Option<string?>($"--{key}") { Description = help ?? "" };
            settings.Add((key, option));
            command.Options.Add(option);
        }
        Add("ckpt_path", "A checkpoint to start from: a path, \"last\" or \"best\".");
        Add("seed_everything", "Seed every random generator with this number (LightningSeed.SeedEverything).");
        foreach (var (key, property) in ConfigBinder.TrainerSettings.OrderBy(s => s.Key, StringComparer.Ordinal))
            Add($"trainer.{key}", XmlDocs.Summary(property));
        foreach (var (section, type) in new[] { ("model", typeof(TModel)), ("data", typeof(TData)) })
        {
            var constructor = ConfigBinder.ConstructorOf(type);
            foreach (var parameter in constructor.GetParameters())
                Add($"{section}.{ConfigBinder.SnakeCase(parameter.Name!)}",
                    XmlDocs.Parameter(constructor, parameter) ?? $"{ConfigBinder.FriendlyName(parameter.ParameterType)}{(parameter.HasDefaultValue ? $" (default {ConfigBinder.ToConfig(parameter.DefaultValue) ?? "null"})" : ", required")}");
        }
        if (name == "export") Add("export.path", "The ONNX file to write (default model.onnx).");

        command.SetAction(result =>
        {
            try
            {
                var config = CliConfig.Empty();
                foreach (var file in result.GetValue(configFiles) ?? [])
                {
                    if (!File.Exists(file)) throw new CliException($"--config {file}: no such file. Write one with: {name} --print_config > {file}");
                    config.Merge(CliConfig.Parse(File.ReadAllText(file), file));
                }
                foreach (var (key, option) in settings)
                    if (result.GetResult(option) is not null) config.Set(key, result.GetValue(option) ?? "null");
                foreach (var key in config.Root.Keys)
                    if (!s_sections.Contains(key))
                        throw new CliException($"'{key}' is not a config section; the sections are: {string.Join(", ", s_sections)}.");
                if (result.GetValue(print))
                {
                    output.Write(Complete(config, typeof(TModel), typeof(TData)).ToYaml());
                    return 0;
                }
                return Execute<TModel, TData>(name, config, batch, output);
            }
            catch (CliException e)
            {
                error.WriteLine($"error: {e.Message}");
                return 2;
            }
            catch (TrainingInterruptedException e)
            {
                error.WriteLine($"error: {e.Message}");
                return e.ExitCode;
            }
            catch (Exception e) when (Environment.GetEnvironmentVariable("LIGHTNING_CLI_TRACE") is null)
            {
                // One line, not a stack trace: the message says what is missing and how to fix it.
                error.WriteLine($"error: {OneLine(e)} (set LIGHTNING_CLI_TRACE=1 for the stack trace)");
                return 1;
            }
        });
        return command;
    }

    private static int Execute<TModel, TData>(string command, CliConfig config, Type batch, TextWriter output)
    {
        if (config.Root.TryGetValue("seed_everything", out var seed) && seed is not null)
            LightningSeed.SeedEverything((int)ConfigBinder.Convert(seed, typeof(int), "seed_everything")!);
        var options = ConfigBinder.Trainer(config.Section("trainer"));
        var model = (LightningModule)ConfigBinder.Construct(typeof(TModel), config.Section("model"), "model");
        var data = (LightningDataModule)ConfigBinder.Construct(typeof(TData), config.Section("data"), "data");
        var ckptPath = config.Root.TryGetValue("ckpt_path", out var ckpt) ? (string?)ConfigBinder.Convert(ckpt, typeof(string), "ckpt_path") : null;
        if (command == "export")
        {
            var path = config.Section("export").TryGetValue("path", out var target) && target is string file ? file : "model.onnx";
            Export(model, data, batch, ckptPath, path);
            output.WriteLine($"exported {path}");
            return 0;
        }
        var trainer = new Trainer(options);
        var method = typeof(Trainer).GetMethods().Single(m => m.Name == command switch
            {
                "fit" => nameof(Trainer.Fit),
                "validate" => nameof(Trainer.Validate),
                "test" => nameof(Trainer.Test),
                _ => nameof(Trainer.Predict),
            } && m.GetParameters() is [_, var second, _] && second.ParameterType.IsGenericType
            && second.ParameterType.GetGenericTypeDefinition() == typeof(LightningDataModule<>))
            .MakeGenericMethod(batch);
        object? returned;
        try
        {
            returned = method.Invoke(trainer, [model, data, ckptPath]);
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            ExceptionDispatchInfo.Capture(e.InnerException).Throw();
            throw;
        }
        switch (returned)
        {
            case IReadOnlyDictionary<string, double> metrics:
                foreach (var (name, value) in metrics.OrderBy(m => m.Key, StringComparer.Ordinal))
                    output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{name}: {value:R}"));
                break;
            case IReadOnlyList<Tensor> predictions:
                output.WriteLine($"predicted {predictions.Count} batches");
                break;
            default:
                output.WriteLine($"fit done: {trainer.CurrentEpoch} epochs, {trainer.GlobalStep} steps" +
                                 (trainer.CheckpointCallback?.BestModelPath is { Length: > 0 } best ? $"; checkpoint {best}" : ""));
                break;
        }
        return 0;
    }

    private static void Export(LightningModule model, LightningDataModule data, Type batch, string? ckptPath, string path)
    {
        if (ckptPath is not null) Checkpoint.Load(ckptPath).RestoreWeights(model);
        data.PrepareData();
        data.Setup(Stage.Predict);
        var loader = typeof(LightningDataModule<>).MakeGenericType(batch).GetMethod(nameof(LightningDataModule<object>.PredictDataLoader))!;
        System.Collections.IEnumerable batches;
        try
        {
            batches = (System.Collections.IEnumerable)loader.Invoke(data, null)!;
        }
        catch (TargetInvocationException e) when (e.InnerException is not null)
        {
            throw new CliException($"export traces the model on the first prediction batch, but {data.GetType().Name}: {e.InnerException.Message}");
        }
        var first = batches.Cast<object>().FirstOrDefault() ?? throw new CliException($"export needs a prediction batch; {data.GetType().Name}'s PredictDataLoader gave none.");
        var sample = first switch
        {
            Tensor tensor => tensor,
            IList<Tensor> { Count: > 0 } list => list[0],
            _ => throw new CliException($"export traces the model on a tensor; the first prediction batch is a {first.GetType().Name}."),
        };
        model.eval();
        model.ToOnnx(path, sample);
    }

    /// <summary>The configuration with every trainer setting and constructor argument filled in (defaults where not set).</summary>
    private static CliConfig Complete(CliConfig given, Type model, Type data)
    {
        var complete = CliConfig.Empty();
        if (given.Root.TryGetValue("seed_everything", out var seed)) complete.Root["seed_everything"] = seed;
        var trainer = new Dictionary<string, object?>(StringComparer.Ordinal);
        var defaults = new TrainerOptions();
        var setTrainer = given.Section("trainer");
        foreach (var (key, property) in ConfigBinder.TrainerSettings.OrderBy(s => s.Key, StringComparer.Ordinal))
        {
            if (setTrainer.TryGetValue(key, out var value) || key == "logger" && setTrainer.TryGetValue("loggers", out value)) trainer[key] = value;
            else if (ConfigBinder.ToConfig(property.GetValue(defaults)) is var text && !ReferenceEquals(text, ConfigBinder.Unrepresentable)) trainer[key] = text;
        }
        complete.Root["trainer"] = trainer;
        foreach (var (section, type) in new[] { ("model", model), ("data", data) })
        {
            var set = given.Section(section);
            var values = new Dictionary<string, object?>(StringComparer.Ordinal);
            foreach (var parameter in ConfigBinder.ConstructorOf(type).GetParameters())
            {
                var key = ConfigBinder.SnakeCase(parameter.Name!);
                if (set.TryGetValue(key, out var value)) values[key] = value;
                else if (!parameter.HasDefaultValue) values[key] = null;
                else if (ConfigBinder.ToConfig(parameter.DefaultValue) is var text && !ReferenceEquals(text, ConfigBinder.Unrepresentable)) values[key] = text;
            }
            complete.Root[section] = values;
        }
        complete.Root["ckpt_path"] = given.Root.TryGetValue("ckpt_path", out var ckpt) ? ckpt : null;
        if (given.Root.TryGetValue("export", out var export)) complete.Root["export"] = export;
        return complete;
    }

    /// <summary>An exception's message without the lines and parameter notes .NET appends to argument errors.</summary>
    private static string OneLine(Exception e)
    {
        var message = e is ArgumentException { ParamName: { } name } ? e.Message.Replace($" (Parameter '{name}')", "", StringComparison.Ordinal) : e.Message;
        return message.Split('\n')[0].TrimEnd();
    }

    private static Type BatchType(Type model)
    {
        for (var type = model; type is not null; type = type.BaseType)
            if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(LightningModule<>)) return type.GetGenericArguments()[0];
        throw new ArgumentException($"{model.Name} must derive from LightningModule<TBatch>.", nameof(model));
    }
}
