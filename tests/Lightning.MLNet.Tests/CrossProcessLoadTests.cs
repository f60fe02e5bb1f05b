using System.Diagnostics;
using System.Globalization;
using Lightning.Testing;
using Microsoft.ML;
using Microsoft.ML.Data;

namespace Lightning.MLNet.Tests;

/// <summary>
/// The portable model.zip (<c>SaveDurably(..., portable: true)</c>) loads in a process that knows nothing of Lightning: a console app built here that references
/// only Microsoft.ML, Microsoft.ML.OnnxTransformer and ONNX Runtime's native CPU package (which OnnxTransformer needs).
/// </summary>
public sealed class CrossProcessLoadTests
{
    private const string LoaderProject = """
        <Project Sdk="Microsoft.NET.Sdk">
          <PropertyGroup>
            <OutputType>Exe</OutputType>
            <TargetFramework>net10.0</TargetFramework>
            <ImplicitUsings>enable</ImplicitUsings>
            <Nullable>enable</Nullable>
          </PropertyGroup>
          <ItemGroup>
            <PackageReference Include="Microsoft.ML" Version="5.0.1" />
            <PackageReference Include="Microsoft.ML.OnnxTransformer" Version="5.0.1" />
            <PackageReference Include="Microsoft.ML.OnnxRuntime" Version="1.31.1" />
          </ItemGroup>
        </Project>
        """;

    // Loads model.zip, scores the rows of features.bin (row count, width, then floats; Name empty, for a pipeline whose
    // MapValueToKey reads it) and prints each row's PredictedLabel (key or text) and Score values, round-trip formatted.
    private const string LoaderProgram = """
        using System.Globalization;
        using Microsoft.ML;
        using Microsoft.ML.Data;

        var ml = new MLContext();
        using var reader = new BinaryReader(File.OpenRead(args[1]));
        int rows = reader.ReadInt32(), width = reader.ReadInt32();
        var data = Enumerable.Range(0, rows).Select(_ => new Input { Features = Enumerable.Range(0, width).Select(_ => reader.ReadSingle()).ToArray() }).ToList();
        var schema = SchemaDefinition.Create(typeof(Input));
        schema[nameof(Input.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, width);
        var model = ml.Model.Load(args[0], out _);
        var scored = model.Transform(ml.Data.LoadFromEnumerable(data, schema));
        var predicted = scored.Schema["PredictedLabel"];
        var labels = predicted.Type is VectorDataViewType { ItemType: TextDataViewType }
            ? scored.GetColumn<VBuffer<ReadOnlyMemory<char>>>(predicted).Select(v => v.GetValues()[0].ToString()).ToArray()
            : scored.GetColumn<VBuffer<uint>>(predicted).Select(v => v.GetValues()[0].ToString()).ToArray();
        var scores = scored.GetColumn<VBuffer<float>>("Score").Select(v => v.DenseValues().ToArray()).ToArray();
        for (int i = 0; i < rows; i++)
            Console.WriteLine(labels[i] + " " + string.Join(" ", scores[i].Select(s => s.ToString("R", CultureInfo.InvariantCulture))));

        public sealed class Input
        {
            public float[] Features { get; set; } = [];

            public string Name { get; set; } = "";
        }
        """;

    [Fact]
    public void SavedModels_LoadInAProcessWithoutLightning_AndPredictTheSame()
    {
        using var root = new TempDirectory();
        var ml = new MLContext(seed: 0);
        var rows = Data.Rows(64, seed: 3);
        var train = Data.View(ml, rows);
        var options = new LightningTrainerOptions
        {
            LabelColumnName = nameof(Row.Class),
            TrainerOptions = new TrainerOptions { MaxEpochs = 2, DefaultRootDir = root.Path, EnableProgressBar = false, EnableModelSummary = false },
        };
        using var model = ml.MulticlassClassification.Trainers.Lightning(() => new Mlp(Data.FeatureCount, Data.ClassCount), options).Fit(train);
        // The sample's and a serving app's shape: text labels to keys, the Lightning trainer, keys back to text.
        var named = ml.Data.LoadFromEnumerable(rows.Select(r => new NamedRow { Features = r.Features, Name = Names[r.Class] }).ToList());
        using var pipeline = ml.Transforms.Conversion.MapValueToKey("Label", nameof(NamedRow.Name))
            .Append(ml.MulticlassClassification.Trainers.Lightning(() => new Mlp(Data.FeatureCount, Data.ClassCount), options with { LabelColumnName = "Label" }))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"))
            .Fit(named);
        var featuresPath = root.Combine("features.bin");
        using (var writer = new BinaryWriter(File.Create(featuresPath)))
        {
            writer.Write(rows.Count);
            writer.Write(Data.FeatureCount);
            foreach (var value in rows.SelectMany(r => r.Features)) writer.Write(value);
        }
        var project = Directory.CreateDirectory(root.Combine("loader")).FullName;
        File.WriteAllText(Path.Combine(project, "Loader.csproj"), LoaderProject);
        File.WriteAllText(Path.Combine(project, "Program.cs"), LoaderProgram);
        var output = Path.Combine(project, "out");
        Run(project, "build", "-c", "Release", "-o", output, "-nologo", "-v", "q");

        foreach (var (transformer, data, name) in new (ITransformer, IDataView, string)[] { (model, train, "trainer"), (pipeline, named, "pipeline") })
        {
            var modelPath = root.Combine($"{name}.zip");
            // The portable save: the scalar outputs here are one-slot vectors there, with the same values.
            ml.Model.SaveDurably(transformer, data.Schema, modelPath, portable: true);
            var scored = transformer.Transform(data);
            var predicted = scored.Schema["PredictedLabel"];
            var labels = predicted.Type is TextDataViewType
                ? scored.GetColumn<ReadOnlyMemory<char>>(predicted).Select(v => v.ToString()).ToArray()
                : scored.GetColumn<uint>(predicted).Select(v => v.ToString()).ToArray();
            var scores = scored.GetColumn<VBuffer<float>>("Score").Select(v => v.DenseValues().ToArray()).ToArray();
            var expected = labels.Select((label, i) =>
                label + " " + string.Join(" ", scores[i].Select(s => s.ToString("R", CultureInfo.InvariantCulture)))).ToArray();

            var printed = Run(project, Path.Combine(output, "Loader.dll"), modelPath, featuresPath)
                .Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

            Assert.Equal(expected, printed);
        }
    }

    private static readonly string[] Names = ["zebra", "ant", "moth"];

    private sealed class NamedRow
    {
        [VectorType(Data.FeatureCount)]
        public float[] Features { get; set; } = [];

        public string Name { get; set; } = "";
    }

    private static string Run(string directory, params string[] arguments)
    {
        var start = new ProcessStartInfo(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet")
        {
            WorkingDirectory = directory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (var argument in arguments) start.ArgumentList.Add(argument);
        // Keep the child build out of this test run's MSBuild node reuse and out of the repository's build settings.
        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromSeconds(120)))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"'dotnet {string.Join(' ', arguments)}' did not finish in 120 s.");
        }
        if (process.ExitCode != 0)
            throw new InvalidOperationException(
                $"'dotnet {string.Join(' ', arguments)}' exited with {process.ExitCode}:\n{stdout.Result}\n{stderr.Result}");
        return stdout.Result;
    }
}
