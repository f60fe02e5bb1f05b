using System.Globalization;
using System.Xml.Linq;
using Lightning.Checkpoints;
using Lightning.Onnx;
using Lightning.Testing;
using Microsoft.ML.OnnxRuntime;
using TorchSharp;
using static TorchSharp.torch;

namespace Lightning.Cli.Tests;

/// <summary>LightningCli over a small regressor: parsing, overrides, --print_config, YAML runs of every subcommand, help and errors.</summary>
public class LightningCliTests
{
    /// <summary>Lightning's Trainer flags that have a counterpart here: each must be settable under its Lightning name.</summary>
    private static readonly string[] LightningFlags =
    [
        "accelerator", "strategy", "devices", "num_nodes", "precision", "logger", "callbacks", "fast_dev_run", "max_epochs",
        "min_epochs", "max_steps", "min_steps", "max_time", "limit_train_batches", "limit_val_batches", "limit_test_batches",
        "limit_predict_batches", "overfit_batches", "val_check_interval", "check_val_every_n_epoch", "num_sanity_val_steps",
        "log_every_n_steps", "enable_checkpointing", "enable_progress_bar", "enable_model_summary", "accumulate_grad_batches",
        "gradient_clip_val", "gradient_clip_algorithm", "deterministic", "profiler", "detect_anomaly", "barebones",
        "reload_dataloaders_every_n_epochs", "default_root_dir", "use_distributed_sampler",
    ];

    [Fact]
    public void EveryLightningTrainerFlag_IsASettingOfTheSameName()
    {
        var (code, output, _) = Cli("fit", "--print_config");
        Assert.Equal(0, code);
        var trainer = CliConfig.Parse(output, "printed").Section("trainer");
        Assert.All(LightningFlags, flag => Assert.True(trainer.ContainsKey(flag), $"trainer.{flag} is missing from --print_config"));
    }

    [Fact]
    public void DottedOverrides_SetTrainerModelAndData_AndPrintConfigShowsThemWithTheDefaults()
    {
        var (code, output, error) = Cli("fit", "--print_config", "--trainer.max_epochs=5", "--model.lr", "0.25", "--data.batch_size=3",
            "--trainer.devices=[0, 1]", "--trainer.limit_train_batches=0.5", "--ckpt_path=last");
        Assert.True(code == 0, error);
        var config = CliConfig.Parse(output, "printed");
        Assert.Equal("5", config.Section("trainer")["max_epochs"]);
        Assert.Equal(["0", "1"], (List<object?>)config.Section("trainer")["devices"]!);
        Assert.Equal("0.5", config.Section("trainer")["limit_train_batches"]);
        Assert.Equal("0.25", config.Section("model")["lr"]);
        Assert.Equal("4", config.Section("model")["hidden"]);
        Assert.Equal("3", config.Section("data")["batch_size"]);
        Assert.Equal("last", config.Root["ckpt_path"]);
        // Defaults as the trainer has them, written so they read back as the same values.
        Assert.Equal("50", config.Section("trainer")["log_every_n_steps"]);
        Assert.Equal("1.0", config.Section("trainer")["limit_val_batches"]);
        Assert.Equal("norm", config.Section("trainer")["gradient_clip_algorithm"]);
    }

    [Fact]
    public void PrintedConfig_ReadBackWithConfig_PrintsTheSameConfig()
    {
        using var folder = new TempDirectory();
        var yaml = folder.Combine("config.yaml");
        File.WriteAllText(yaml, """
            seed_everything: 3
            trainer:
              max_epochs: 2
              max_time: 00:01:30:00
              precision: bf16-mixed
              callbacks:
                - class_path: ModelCheckpoint
                  init_args:
                    monitor: val_loss
                    dirpath: 'ckpts: best'
              logger:
                - class_path: CsvLogger
                  init_args: {save_dir: logs}
            model:
              lr: 0.05
            """);
        var first = Cli("fit", "--config", yaml, "--print_config", "--trainer.gradient_clip_val=0.5");
        Assert.True(first.Code == 0, first.Error);
        File.WriteAllText(folder.Combine("printed.yaml"), first.Output);
        var second = Cli("fit", "--config", folder.Combine("printed.yaml"), "--print_config");
        Assert.True(second.Code == 0, second.Error);
        Assert.Equal(first.Output, second.Output);
        var config = CliConfig.Parse(second.Output, "printed");
        Assert.Equal("01:30:00", (string?)config.Section("trainer")["max_time"] is { } t ? TimeSpan.Parse(t, CultureInfo.InvariantCulture).ToString() : null);
        Assert.Equal("0.5", config.Section("trainer")["gradient_clip_val"]);
        var checkpoint = (Dictionary<string, object?>)((List<object?>)config.Section("trainer")["callbacks"]!)[0]!;
        Assert.Equal("ckpts: best", ((Dictionary<string, object?>)checkpoint["init_args"]!)["dirpath"]);
    }

    [Fact]
    public void FitFromYaml_BuildsCallbacksAndLoggersByName_AndTrainsWithTheModelsArguments()
    {
        using var folder = new TempDirectory();
        var yaml = folder.Combine("fit.yaml");
        File.WriteAllText(yaml, $"""
            seed_everything: 5
            trainer:
              max_epochs: 3
              default_root_dir: {folder.Path}
              enable_progress_bar: false
              enable_model_summary: false
              callbacks:
                - class_path: Lightning.Callbacks.ModelCheckpoint
                  init_args:
                    dirpath: {folder.Combine("ckpts")}
                    monitor: val_loss
                    save_last: true
                - LearningRateMonitor
              logger:
                - class_path: CsvLogger
                  init_args:
                    save_dir: {folder.Combine("logs")}
            model:
              lr: 0.05
              hidden: 6
            data:
              batches: 5
            """);
        var (code, output, error) = Cli("fit", "--config", yaml, "--trainer.max_epochs=2");

        Assert.True(code == 0, error);
        // The command line wins over the file: 2 epochs of 5 batches.
        Assert.Contains("fit done: 2 epochs, 10 steps", output);
        var last = folder.Combine("ckpts", "last.ckpt");
        Assert.True(File.Exists(last), output);
        var checkpoint = Checkpoint.Load(last);
        Assert.Equal(0.05, checkpoint.Hyperparameters["lr"].GetDouble());
        Assert.Equal(6, checkpoint.Hyperparameters["hidden"].GetInt32());
        var metrics = File.ReadAllText(Assert.Single(Directory.GetFiles(folder.Combine("logs"), "metrics.csv", SearchOption.AllDirectories)));
        Assert.Contains("val_loss", metrics);
        // The callback given by its bare name ran: it logs the learning rate.
        Assert.Contains("lr-SGD", metrics);
    }

    [Fact]
    public void ValidateTestPredictAndExport_FromACheckpoint()
    {
        using var folder = new TempDirectory();
        var root = $"--trainer.default_root_dir={folder.Path}";
        Assert.Equal(0, Cli("fit", root, "--trainer.max_epochs=1", "--trainer.enable_progress_bar=false", "--seed_everything=1").Code);
        var checkpoint = Assert.Single(Directory.GetFiles(folder.Path, "*.ckpt", SearchOption.AllDirectories));

        var validate = Cli("validate", root, $"--ckpt_path={checkpoint}", "--trainer.enable_progress_bar=false");
        Assert.True(validate.Code == 0, validate.Error);
        // The same evaluation in this process, with the checkpoint's weights.
        var model = LightningModule.LoadFromCheckpoint<TinyModel>(checkpoint);
        var expected = new Trainer(new TrainerOptions { DefaultRootDir = folder.Path, EnableProgressBar = false, Loggers = [] })
            .Validate(model, new TinyData())["val_loss"];
        Assert.Equal(string.Create(CultureInfo.InvariantCulture, $"val_loss: {expected:R}"), validate.Output.Trim().Split('\n')[^1]);

        var test = Cli("test", root, $"--ckpt_path={checkpoint}", "--trainer.enable_progress_bar=false");
        Assert.True(test.Code == 0, test.Error);
        Assert.Contains("test_loss: ", test.Output);
        var predict = Cli("predict", root, $"--ckpt_path={checkpoint}", "--trainer.enable_progress_bar=false", "--data.batches=3");
        Assert.True(predict.Code == 0, predict.Error);
        Assert.Contains("predicted 3 batches", predict.Output);

        var onnx = folder.Combine("tiny.onnx");
        var export = Cli("export", $"--ckpt_path={checkpoint}", $"--export.path={onnx}");
        Assert.True(export.Code == 0, export.Error);
        // ONNX Runtime on the exported file gives the checkpoint's forward.
        using var sample = new TinyData().PredictDataLoader().First();
        using var session = new InferenceSession(onnx);
        using var input = OrtValue.CreateTensorValueFromMemory(sample.data<float>().ToArray(), sample.shape);
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, session.InputNames, [input], session.OutputNames);
        model.eval();
        using var reference = model.forward(sample);
        var actual = outputs[0].GetTensorDataAsSpan<float>().ToArray();
        var wanted = reference.data<float>().ToArray();
        Assert.Equal(wanted.Length, actual.Length);
        for (int i = 0; i < wanted.Length; i++) Assert.Equal(wanted[i], actual[i], 1e-5f);
    }

    [Fact]
    public void Help_ListsEverySettingWithItsXmlDocumentation()
    {
        var (code, output, _) = Cli("fit", "--help");
        Assert.Equal(0, code);
        // Read independently from the XML file the compiler wrote beside Lightning.Core.
        var docs = XDocument.Load(Path.ChangeExtension(typeof(TrainerOptions).Assembly.Location, ".xml"));
        var summary = docs.Descendants("member").Single(m => (string?)m.Attribute("name") == "P:Lightning.TrainerOptions.AccumulateGradBatches").Element("summary")!.Value;
        Assert.Contains("--trainer.accumulate_grad_batches", output);
        Assert.Contains(string.Join(' ', summary.Split((char[])[' ', '\n', '\r'], StringSplitOptions.RemoveEmptyEntries)), Flatten(output));
        Assert.Contains("--model.lr", output);
        Assert.Contains("--data.batch_size", output);
        foreach (var command in new[] { "fit", "validate", "test", "predict", "export" }) Assert.Contains(command, Cli("--help").Output);
    }

    [Theory]
    [InlineData("trainer:\n  max_epoch: 3\n", "trainer.max_epoch is not a trainer setting; the settings are: ", 2)]
    [InlineData("trainer:\n  max_epochs: many\n", "trainer.max_epochs = many is not allowed: it needs an integer.", 2)]
    [InlineData("trainer:\n  callbacks:\n    - class_path: NoSuchCallback\n", "trainer.callbacks[0].class_path = NoSuchCallback is not allowed: it must name a Callback type; known: ", 2)]
    [InlineData("trainer:\n  callbacks:\n    - class_path: EarlyStopping\n      init_args: {monitr: val_loss}\n", "trainer.callbacks[0].init_args.monitr is not an argument of EarlyStopping; its arguments are: monitor", 2)]
    [InlineData("model:\n  learning_rate: 0.1\n", "model.learning_rate is not an argument of TinyModel; its arguments are: lr, hidden.", 2)]
    [InlineData("trainers:\n  max_epochs: 1\n", "'trainers' is not a config section; the sections are: trainer, model, data, ckpt_path, seed_everything, export.", 2)]
    [InlineData("trainer: [1, 2\n", "not valid YAML at line", 2)]
    [InlineData("trainer:\n  precision: 17\n", "error: Precision = \"17\" is not allowed: use one of \"32-true\"", 1)]
    public void BadConfig_PrintsOneLineNamingTheSetting_AndExitsNonZero(string yaml, string message, int exitCode)
    {
        using var folder = new TempDirectory();
        var file = folder.Combine("bad.yaml");
        File.WriteAllText(file, yaml);
        var (code, output, error) = Cli("fit", "--config", file, $"--trainer.default_root_dir={folder.Path}");
        Assert.Equal(exitCode, code);
        Assert.Contains(message, error);
        Assert.Single(error.Trim().Split('\n'));
        Assert.DoesNotContain("   at ", error);
        Assert.Equal("", output);
    }

    [Fact]
    public void SeveralConfigFiles_MergeInOrder_TheLaterOneWinsSettingBySetting()
    {
        using var folder = new TempDirectory();
        File.WriteAllText(folder.Combine("a.yaml"), "trainer:\n  max_epochs: 3\n  log_every_n_steps: 7\nmodel:\n  lr: 0.05\n");
        File.WriteAllText(folder.Combine("b.yaml"), "trainer:\n  max_epochs: 4\nmodel:\n  hidden: 6\n");

        foreach (var (first, second, epochs) in new[] { ("a.yaml", "b.yaml", "4"), ("b.yaml", "a.yaml", "3") })
        {
            var (code, output, error) = Cli("fit", "--config", folder.Combine(first), "--config", folder.Combine(second), "--print_config");
            Assert.True(code == 0, error);
            var config = CliConfig.Parse(output, "printed");
            Assert.Equal(epochs, config.Section("trainer")["max_epochs"]);
            // A section merges setting by setting: what only one file sets survives the other.
            Assert.Equal("7", config.Section("trainer")["log_every_n_steps"]);
            Assert.Equal("0.05", config.Section("model")["lr"]);
            Assert.Equal("6", config.Section("model")["hidden"]);
        }
    }

    [Fact]
    public void BadDottedValueOnTheCommandLine_PrintsOneLineNamingTheSetting_AndExits2()
    {
        using var folder = new TempDirectory();
        var (code, output, error) = Cli("fit", "--trainer.max_epochs=many", $"--trainer.default_root_dir={folder.Path}");
        Assert.Equal(2, code);
        Assert.Equal("error: trainer.max_epochs = many is not allowed: it needs an integer.", error.Trim());
        Assert.Equal("", output);
        Assert.Empty(Directory.EnumerateFileSystemEntries(folder.Path));
    }

    [Fact]
    public void FailedRun_WithLightningCliTrace_PrintsTheStackTrace()
    {
        using var folder = new TempDirectory();
        string[] args = ["fit", "--trainer.precision=17", $"--trainer.default_root_dir={folder.Path}"];
        var quiet = Cli(args);
        Environment.SetEnvironmentVariable("LIGHTNING_CLI_TRACE", "1");
        try
        {
            var (code, _, error) = Cli(args);
            Assert.Equal(1, code);
            Assert.Contains("Precision = \"17\" is not allowed", error);
            Assert.Contains("   at Lightning.", error);
            Assert.DoesNotContain("   at ", quiet.Error);
        }
        finally
        {
            Environment.SetEnvironmentVariable("LIGHTNING_CLI_TRACE", null);
        }
    }

    [Fact]
    public void MissingFiles_PrintOneLineWithTheFix()
    {
        using var folder = new TempDirectory();
        var noConfig = Cli("fit", "--config", folder.Combine("nope.yaml"));
        Assert.Equal(2, noConfig.Code);
        Assert.Equal($"error: --config {folder.Combine("nope.yaml")}: no such file. Write one with: fit --print_config > {folder.Combine("nope.yaml")}", noConfig.Error.Trim());

        var noCheckpoint = Cli("validate", $"--ckpt_path={folder.Combine("missing.ckpt")}", $"--trainer.default_root_dir={folder.Path}");
        Assert.Equal(1, noCheckpoint.Code);
        Assert.Single(noCheckpoint.Error.Trim().Split('\n'));
        Assert.Contains($"Checkpoint '{folder.Combine("missing.ckpt")}' does not exist.", noCheckpoint.Error);
    }

    [Fact]
    public void RequiredConstructorArgument_IsNamedWithTheOptionThatSetsIt()
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var code = LightningCli.Run<NeedsWidth, TinyData>(["fit", "--trainer.max_epochs=1"], output, error);
        Assert.Equal(2, code);
        Assert.Equal("error: model.width is required by NeedsWidth: set it in the config or with --model.width=<integer>.", error.ToString().Trim());
    }

    private static string Flatten(string text) => string.Join(' ', text.Split((char[])[' ', '\n', '\r'], StringSplitOptions.RemoveEmptyEntries));

    private static (int Code, string Output, string Error) Cli(params string[] args)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var code = LightningCli.Run<TinyModel, TinyData>(args, output, error);
        return (code, output.ToString(), error.ToString());
    }
}

/// <summary>A two-layer regressor of 8 features onto their sum.</summary>
public sealed class TinyModel : LightningModule<Tensor>, IOnnxExportable
{
    private readonly TorchSharp.Modules.Sequential net;
    private readonly double _lr;

    public TinyModel(double lr = 0.1, int hidden = 4) : base(nameof(TinyModel))
    {
        net = nn.Sequential(nn.Linear(8, hidden), nn.Tanh(), nn.Linear(hidden, 1));
        _lr = lr;
        SaveHyperparameters(new { lr, hidden });
        RegisterComponents();
    }

    public Tensor forward(Tensor x) => net.forward(x);

    public IReadOnlyList<OnnxValue> ExportOnnx(OnnxGraph graph, IReadOnlyList<OnnxValue> inputs) => [graph.Call(net, inputs[0])];

    public override Tensor TrainingStep(Tensor batch, int batchIdx) => Loss(batch);

    public override void ValidationStep(Tensor batch, int batchIdx) => Log("val_loss", Loss(batch));

    public override void TestStep(Tensor batch, int batchIdx) => Log("test_loss", Loss(batch));

    public override Tensor PredictStep(Tensor batch, int batchIdx) => forward(batch);

    public override OptimizerConfiguration ConfigureOptimizers() => optim.SGD(parameters(), _lr);

    private Tensor Loss(Tensor batch) => nn.functional.mse_loss(net.forward(batch), batch.sum(1, keepdim: true));
}

/// <summary>A model whose constructor needs an argument the config must give.</summary>
public sealed class NeedsWidth(int width) : LightningModule<Tensor>(nameof(NeedsWidth))
{
    public int Width { get; } = width;

    public override Tensor TrainingStep(Tensor batch, int batchIdx) => batch.sum();

    public override OptimizerConfiguration ConfigureOptimizers() => OptimizerConfiguration.None;
}

/// <summary>Fixed random batches of 8 features for every stage.</summary>
public sealed class TinyData(int batches = 5, int batchSize = 4) : LightningDataModule<Tensor>
{
    public override IEnumerable<Tensor> TrainDataLoader() => Batches(1);

    public override IEnumerable<Tensor>? ValDataLoader() => Batches(2);

    public override IEnumerable<Tensor> TestDataLoader() => Batches(3);

    public override IEnumerable<Tensor> PredictDataLoader() => Batches(4);

    private List<Tensor> Batches(long seed)
    {
        using var generator = new Generator((ulong)seed);
        return Enumerable.Range(0, batches).Select(_ => randn([batchSize, 8], generator: generator)).ToList();
    }
}
