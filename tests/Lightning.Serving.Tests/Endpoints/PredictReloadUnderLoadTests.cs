using System.Net.Http.Json;
using System.Text;
using Lightning.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Lightning.Serving.Tests.Endpoints;

[Collection(LoadCollection.Name)]
public sealed class PredictReloadUnderLoadTests
{
    [Fact]
    public async Task Kestrel_ModelReplacedFiveTimesUnderLoad_NoFailedRequestsAndOnlyOldOrNewAnswers()
    {
        using var dir = new TempDirectory();
        var path = dir.Combine("model.zip");
        File.WriteAllBytes(path, TestModels.A);
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseKestrel().UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Services.AddPredictionEnginePool<SizeInput, ScoreOutput>().FromFile(path);
        await using var app = builder.Build();
        app.MapPredict<SizeInput, ScoreOutput>("/predict");
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        var pool = app.Services.GetRequiredService<PredictionEnginePool<SizeInput, ScoreOutput>>();
        using var http = new HttpClient { BaseAddress = new Uri(address) };

        const int clients = 8, requestsPerClient = 2000, swaps = 5;
        var failures = 0;
        var unexpected = 0;
        var fromA = 0;
        var fromB = 0;
        var done = 0;
        var load = Enumerable.Range(0, clients).Select(_ => Task.Run(async () =>
        {
            for (var i = 0; i < requestsPerClient; i++)
            {
                try
                {
                    using var response = await http.PostAsync("/predict", new StringContent("""{"size": 0.5}""", Encoding.UTF8, "application/json"));
                    if (!response.IsSuccessStatusCode) { Interlocked.Increment(ref failures); continue; }
                    var score = (await response.Content.ReadFromJsonAsync<ScoreOutput>())!.Score;
                    if (TestModels.IsA(score)) Interlocked.Increment(ref fromA);
                    else if (TestModels.IsB(score)) Interlocked.Increment(ref fromB);
                    else Interlocked.Increment(ref unexpected);
                }
                catch (HttpRequestException)
                {
                    Interlocked.Increment(ref failures);
                }
                finally
                {
                    Interlocked.Increment(ref done);
                }
            }
        })).ToArray();

        // Spread the swaps over the run, each one a rename-over alternating between the two models.
        var total = clients * requestsPerClient;
        for (var swap = 1; swap <= swaps; swap++)
        {
            var at = total * swap / (swaps + 1);
            while (Volatile.Read(ref done) < at && !load.All(t => t.IsCompleted)) await Task.Delay(5);
            TestModels.ReplaceAtomically(path, swap % 2 == 1 ? TestModels.B : TestModels.A);
            var version = swap + 1;
            Assert.True(Wait.Until(() => pool.GetModelInfo().Version >= version), $"swap {swap} was not reloaded");
        }
        await Task.WhenAll(load);

        Assert.Equal(0, failures);
        Assert.Equal(0, unexpected);
        Assert.Equal(total, fromA + fromB);
        Assert.True(fromB > 0, "no answer came from the replacement model");
        Assert.Equal(swaps + 1, pool.GetModelInfo().Version);
        // Five swaps end on model B.
        Assert.True(TestModels.IsB(pool.Predict(new SizeInput { Size = 0.5f }).Score));
    }
}
