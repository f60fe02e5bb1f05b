using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Lightning.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.Logging;

namespace Lightning.Serving.Tests.Endpoints;

public sealed class PredictEndpointTests : IAsyncLifetime
{
    private readonly TempDirectory _dir = new();
    private WebApplication _app = null!;
    private HttpClient _client = null!;

    public async Task InitializeAsync()
    {
        File.WriteAllBytes(_dir.Combine("a.zip"), TestModels.A);
        File.WriteAllBytes(_dir.Combine("b.zip"), TestModels.B);
        File.WriteAllBytes(_dir.Combine("vector.zip"), TestModels.Vector);
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        builder.Logging.ClearProviders();
        builder.Services.AddPredictionEnginePool<SizeInput, ScoreOutput>()
            .FromFile(_dir.Combine("a.zip"), watchForChanges: false)
            .FromFile("b", _dir.Combine("b.zip"), watchForChanges: false);
        builder.Services.AddPredictionEnginePool<VectorInput, ScoreOutput>().FromFile(_dir.Combine("vector.zip"), watchForChanges: false);
        _app = builder.Build();
        _app.MapPredict<SizeInput, ScoreOutput>("/predict");
        _app.MapPredict<SizeInput, ScoreOutput>("/predict/b", "b");
        _app.MapPredict<VectorInput, ScoreOutput>("/predict/vector");
        await _app.StartAsync();
        _client = _app.GetTestClient();
    }

    public async Task DisposeAsync()
    {
        await _app.DisposeAsync();
        _dir.Dispose();
    }

    private Task<HttpResponseMessage> PostAsync(string path, string body) =>
        _client.PostAsync(path, new StringContent(body, Encoding.UTF8, "application/json"));

    [Fact]
    public async Task MapPredict_OneExample_ReturnsOnePrediction()
    {
        var response = await PostAsync("/predict", """{"size": 0.5}""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var prediction = await response.Content.ReadFromJsonAsync<ScoreOutput>();
        Assert.True(TestModels.IsA(prediction!.Score));
    }

    [Fact]
    public async Task MapPredict_Array_ReturnsPredictionsInOrder()
    {
        var response = await PostAsync("/predict/b", """[{"size": 0.0}, {"size": 1.0}, {"Size": 0.5}]""");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var predictions = await response.Content.ReadFromJsonAsync<ScoreOutput[]>();
        Assert.Equal(3, predictions!.Length);
        Assert.All(predictions, p => Assert.True(TestModels.IsB(p.Score)));
        // Model B is label = -10x - 5: the score falls with the size.
        Assert.True(predictions[0].Score > predictions[1].Score);
    }

    [Fact]
    public async Task MapPredict_EmptyArray_ReturnsEmptyArray()
    {
        var response = await PostAsync("/predict", "[]");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("[]", await response.Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData("""{"size": 0.5""", "Invalid JSON")]
    [InlineData("""{"size": "big"}""", "$.size")]
    [InlineData("42", "JSON Number")]
    [InlineData("", "empty")]
    [InlineData("[{\"size\": 1}, null]", "Example [1] is null")]
    [InlineData("nonsense", "not valid JSON")]
    public async Task MapPredict_BadBody_Returns400ProblemNamingIt(string body, string expected)
    {
        var response = await PostAsync("/predict", body);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal(400, problem.RootElement.GetProperty("status").GetInt32());
        Assert.Contains(expected, problem.RootElement.GetProperty("title").GetString() + " " + problem.RootElement.GetProperty("detail").GetString());
    }

    [Fact]
    public async Task MapPredict_VectorOfRightLength_ReturnsPrediction()
    {
        var low = await PostAsync("/predict/vector", """{"features": [0, 0, 0]}""");
        var high = await PostAsync("/predict/vector", """{"features": [1, 1, 1]}""");

        Assert.Equal(HttpStatusCode.OK, low.StatusCode);
        Assert.Equal(HttpStatusCode.OK, high.StatusCode);
        // label = x0 + 2·x1 + 3·x2: about 0 and 6.
        var lowScore = (await low.Content.ReadFromJsonAsync<ScoreOutput>())!.Score;
        var highScore = (await high.Content.ReadFromJsonAsync<ScoreOutput>())!.Score;
        Assert.True(highScore - lowScore > 3, $"scores {lowScore} and {highScore}");
    }

    [Theory]
    [InlineData("""{"features": [1, 2]}""", "example", "received 2")]
    [InlineData("""{"features": [1, 2, 3, 4, 5]}""", "example", "received 5")]
    [InlineData("""{"features": null}""", "example", "received null")]
    [InlineData("""{}""", "example", "received null")]
    [InlineData("""[{"features": [1, 2, 3]}, {"features": [1]}]""", "example [1]", "received 1")]
    public async Task MapPredict_VectorOfWrongLength_Returns400NamingColumnExpectedAndReceived(string body, string which, string received)
    {
        var response = await PostAsync("/predict/vector", body);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var detail = problem.RootElement.GetProperty("detail").GetString()!;
        Assert.Contains("column 'Features'", detail);
        Assert.Contains("expects 3 Single values", detail);
        Assert.Contains(which, detail);
        Assert.Contains(received, detail);
    }

    [Fact]
    public async Task MapPredict_RandomCorruptions_NeverAnswer500()
    {
        var valid = Encoding.UTF8.GetBytes("""[{"size": 0.25}, {"size": 0.75}]""");
        var random = new Random(11);
        for (var i = 0; i < 200; i++)
        {
            var body = valid.ToArray();
            for (var k = random.Next(1, 4); k > 0; k--) body[random.Next(body.Length)] = (byte)random.Next(256);
            var length = random.Next(2) == 0 ? body.Length : random.Next(body.Length);
            var response = await _client.PostAsync("/predict", new ByteArrayContent(body, 0, length));
            Assert.True(response.StatusCode is HttpStatusCode.OK or HttpStatusCode.BadRequest,
                $"body {Convert.ToHexString(body, 0, length)} got {(int)response.StatusCode}");
        }
    }

    [Fact]
    public void MapPredict_WithoutAddPredictionEnginePool_ThrowsFriendlyError()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        using var app = builder.Build();

        var e = Assert.Throws<InvalidOperationException>(() => app.MapPredict<SizeInput, ScoreOutput>("/predict"));
        Assert.Contains("services.AddPredictionEnginePool<SizeInput, ScoreOutput>()", e.Message);
    }

    [Fact]
    public async Task HostStart_MissingModelFile_FailsAtStartNamingTheFile()
    {
        var missing = _dir.Combine("missing.zip");
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseTestServer();
        builder.Logging.ClearProviders();
        builder.Services.AddPredictionEnginePool<SizeInput, ScoreOutput>().FromFile("late", missing);
        await using var app = builder.Build();

        var e = await Assert.ThrowsAsync<ArgumentException>(() => app.StartAsync());
        Assert.StartsWith($"The provided model file {missing} doesn't exist.", e.Message);
    }

    [Fact]
    public void MapPredict_UnconfiguredModelName_ThrowsNamingIt()
    {
        var e = Assert.Throws<InvalidOperationException>(() => _app.MapPredict<SizeInput, ScoreOutput>("/predict/c", "c"));
        Assert.Contains("no model named 'c'", e.Message);
    }
}
