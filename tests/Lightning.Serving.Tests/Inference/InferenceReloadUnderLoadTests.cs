using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Lightning.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Lightning.Serving.Tests.Inference;

[Collection(LoadCollection.Name)]
public sealed class InferenceReloadUnderLoadTests
{
    [Fact]
    public async Task Kestrel_ModelReplacedFourTimesUnderConcurrentLoad_NoFailuresAndOnlyOldOrNewAnswers()
    {
        using var dir = new TempDirectory();
        var path = OnnxTestModels.Linear(dir.Combine("linear.onnx"), seed: 1);
        var other = OnnxTestModels.Linear(dir.Combine("other.bin"), seed: 2);
        byte[][] versions = [File.ReadAllBytes(other), File.ReadAllBytes(path)];
        float[] row = [1, 2, 3, 4];
        var fromFirst = OnnxTestModels.Reference(path, row, [1, 4]);
        var fromSecond = OnnxTestModels.Reference(other, row, [1, 4]);
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseKestrel().UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        // Mixed paths: idle requests run inline, overlapping ones queue and merge, while reloads retire generations.
        builder.Services.AddOnnxInference().AddModel("linear", path, o => { o.ReloadDebounceMilliseconds = 20; o.MaxQueueDelayMicroseconds = 500; });
        await using var app = builder.Build();
        app.MapOpenInference();
        await app.StartAsync();
        app.Services.GetRequiredService<OnnxModelRegistry>().TryGet("linear", out var model);
        using var http = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };
        var body = OnnxTestModels.InferBody(row, 1);

        const int clients = 8, swaps = 4;
        int failures = 0, first = 0, second = 0, unexpected = 0;
        var swapsDone = false;
        var load = Enumerable.Range(0, clients).Select(_ => Task.Run(async () =>
        {
            for (int i = 0; i < 50 || !Volatile.Read(ref swapsDone); i++)
            {
                using var response = await http.PostAsync("/v2/models/linear/infer", new StringContent(body, Encoding.UTF8, "application/json"));
                if (!response.IsSuccessStatusCode) { Interlocked.Increment(ref failures); continue; }
                var data = OnnxTestModels.Floats((await response.Content.ReadFromJsonAsync<JsonNode>())!["outputs"]![0]!["data"]);
                if (Close(fromFirst, data)) Interlocked.Increment(ref first);
                else if (Close(fromSecond, data)) Interlocked.Increment(ref second);
                else Interlocked.Increment(ref unexpected);
            }
        })).ToArray();

        for (int swap = 1; swap <= swaps; swap++)
        {
            await Task.Delay(100);
            // Odd swaps bring in the second model, even ones the first again.
            var servedByNew = swap % 2 == 1 ? () => Volatile.Read(ref second) : (Func<int>)(() => Volatile.Read(ref first));
            var answersBefore = servedByNew();
            var temp = dir.Combine($"swap{swap}.tmp");
            await File.WriteAllBytesAsync(temp, versions[(swap - 1) % 2]);
            File.Move(temp, path, overwrite: true);
            var generation = swap + 1;
            // Awaited, not slept on: a blocked pool thread would starve the clients and Kestrel on a small machine.
            await Wait.UntilAsync(() => model.Current!.Generation >= generation, $"swap {swap} to be reloaded");
            await Wait.UntilAsync(() => servedByNew() > answersBefore, $"an answer from the model of swap {swap}");
        }
        Volatile.Write(ref swapsDone, true);
        await Task.WhenAll(load);

        Assert.Equal(0, failures);
        Assert.Equal(0, unexpected);
        Assert.True(first > 0 && second > 0, $"{first} answers from the first model, {second} from the second");
        // Four swaps end on the first model again.
        Assert.Equal(swaps + 1, model.Current!.Generation);
    }

    private static bool Close(float[] expected, float[] actual) =>
        expected.Length == actual.Length && expected.Zip(actual).All(p => Math.Abs(p.First - p.Second) <= 1e-5 + 1e-4 * Math.Abs(p.First));
}
