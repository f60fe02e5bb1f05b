using System.Net;
using System.Text.Json.Nodes;
using Lightning.Serving.Tests.Inference;
using Lightning.Testing;

namespace Lightning.Serving.Tests.Repository;

/// <summary>A Triton-style repository: versions served at once by policy, the repository extension's routes, bad names and configs.</summary>
public sealed class ModelRepositoryTests : IDisposable
{
    private static readonly float[] Sample = [0.5f, -1, 2, 3];
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    /// <summary>repo/linear/1 and repo/linear/2: the same graph with different weights; repo/other/1 too.</summary>
    private string Repository(string? config = null)
    {
        var root = _dir.Combine("repo");
        foreach (var (name, version, seed) in new[] { ("linear", 1, 1), ("linear", 2, 2), ("other", 1, 3) })
        {
            Directory.CreateDirectory(Path.Combine(root, name, version.ToString()));
            OnnxTestModels.Linear(Path.Combine(root, name, version.ToString(), "model.onnx"), seed);
        }
        if (config is not null) File.WriteAllText(Path.Combine(root, "linear", "config.json"), config);
        return root;
    }

    private static float[] Output(JsonNode? body) => OnnxTestModels.Floats(body!["outputs"]![0]!["data"]);

    private float[] Reference(string root, int version) =>
        OnnxTestModels.Reference(Path.Combine(root, "linear", version.ToString(), "model.onnx"), Sample, [1, 4]);

    [Fact]
    public async Task VersionPolicyAll_TwoVersionsServedAtOnce_EachAnswersWithItsOwnWeights()
    {
        var root = Repository("""{"version_policy": {"all": {}}, "max_batch_size": 8}""");
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModelRepository(root));

        var (v1, v1Body) = await server.PostAsync("/v2/models/linear/versions/1/infer", OnnxTestModels.InferBody(Sample, 1));
        var (v2, v2Body) = await server.PostAsync("/v2/models/linear/versions/2/infer", OnnxTestModels.InferBody(Sample, 1));
        var (latest, latestBody) = await server.PostAsync("/v2/models/linear/infer", OnnxTestModels.InferBody(Sample, 1));
        var (_, metadata) = await server.GetAsync("/v2/models/linear");

        Assert.Equal(HttpStatusCode.OK, v1.StatusCode);
        Assert.Equal(HttpStatusCode.OK, v2.StatusCode);
        Approx.AssertClose(Reference(root, 1), Output(v1Body));
        Approx.AssertClose(Reference(root, 2), Output(v2Body));
        Assert.NotEqual(Output(v1Body), Output(v2Body));
        Assert.Equal("2", latestBody!["model_version"]!.GetValue<string>());
        Approx.AssertClose(Reference(root, 2), Output(latestBody));
        Assert.Equal("[\"1\",\"2\"]", metadata!["versions"]!.ToJsonString());
        Assert.Equal(HttpStatusCode.OK, latest.StatusCode);
    }

    [Theory]
    [InlineData("""{"latest": {"num_versions": 2}}""", new[] { 2, 3 })]
    [InlineData("""{"specific": {"versions": [1, 3]}}""", new[] { 1, 3 })]
    public async Task VersionPolicy_PicksItsVersionsOfThree_EachServesItsOwnWeights_TheOthersAre404(string policy, int[] served)
    {
        var root = Repository($$"""{"version_policy": {{policy}}}""");
        Directory.CreateDirectory(Path.Combine(root, "linear", "3"));
        OnnxTestModels.Linear(Path.Combine(root, "linear", "3", "model.onnx"), seed: 4);
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModelRepository(root));

        var (_, metadata) = await server.GetAsync("/v2/models/linear");
        Assert.Equal(served.Select(v => v.ToString()), metadata!["versions"]!.AsArray().Select(v => v!.GetValue<string>()));
        foreach (var version in new[] { 1, 2, 3 })
        {
            var (response, body) = await server.PostAsync($"/v2/models/linear/versions/{version}/infer", OnnxTestModels.InferBody(Sample, 1));
            if (!served.Contains(version))
            {
                Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
                continue;
            }
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Approx.AssertClose(Reference(root, version), Output(body));
        }
        var (_, latest) = await server.PostAsync("/v2/models/linear/infer", OnnxTestModels.InferBody(Sample, 1));
        Assert.Equal("3", latest!["model_version"]!.GetValue<string>());
    }

    [Fact]
    public async Task Index_DefaultPolicy_LatestVersionReadyAndTheOtherNotSelected()
    {
        var root = Repository();
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModelRepository(root));

        var (response, index) = await server.PostAsync("/v2/repository/index", "");
        var (old, oldBody) = await server.PostAsync("/v2/models/linear/versions/1/infer", OnnxTestModels.InferBody(Sample, 1));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var entries = index!.AsArray().Select(e => (Name: e!["name"]!.GetValue<string>(), Version: e["version"]!.GetValue<string>(),
            State: e["state"]!.GetValue<string>(), Reason: e["reason"]!.GetValue<string>())).ToList();
        Assert.Equal([("linear", "1", "UNAVAILABLE", "not selected by the version policy"), ("linear", "2", "READY", ""), ("other", "1", "READY", "")], entries);
        Assert.Equal(HttpStatusCode.NotFound, old.StatusCode);
        Assert.Contains("its versions are ['2']", oldBody!["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task ServerMetadata_WithRepository_ListsTheRepositoryExtension()
    {
        var root = Repository();
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModelRepository(root));

        var (_, body) = await server.GetAsync("/v2");

        Assert.Contains("model_repository", body!["extensions"]!.AsArray().Select(e => e!.GetValue<string>()));
    }

    [Fact]
    public async Task LoadAndUnload_ExplicitControl_ServeOnlyWhileLoaded()
    {
        var root = Repository();
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModelRepository(root, loadAllOnStart: false));
        var (before, _) = await server.PostAsync("/v2/models/other/infer", OnnxTestModels.InferBody(Sample, 1));

        var (load, _) = await server.PostAsync("/v2/repository/models/other/load", "");
        var (served, _) = await server.PostAsync("/v2/models/other/infer", OnnxTestModels.InferBody(Sample, 1));
        var (unload, _) = await server.PostAsync("/v2/repository/models/other/unload", "");
        var (after, afterBody) = await server.PostAsync("/v2/models/other/infer", OnnxTestModels.InferBody(Sample, 1));
        var (_, index) = await server.PostAsync("/v2/repository/index", "");

        Assert.Equal(HttpStatusCode.NotFound, before.StatusCode);
        Assert.Equal(HttpStatusCode.OK, load.StatusCode);
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        Assert.Equal(HttpStatusCode.OK, unload.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, after.StatusCode);
        Assert.Contains("model 'other' is not found", afterBody!["error"]!.GetValue<string>());
        Assert.All(index!.AsArray(), e => Assert.Equal("UNAVAILABLE", e!["state"]!.GetValue<string>()));
    }

    [Theory]
    [InlineData("/v2/repository/models/..%2F..%2Fetc/load")]
    [InlineData("/v2/repository/models/other%2F..%2F..%2Frepo%2Fother/load")]
    [InlineData("/v2/repository/models/nope/load")]
    [InlineData("/v2/repository/models/..%5Crepo/unload")]
    public async Task Load_NameThatIsNotAModelFolder_Returns404ListingTheModels(string path)
    {
        var root = Repository();
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModelRepository(root));

        var (response, body) = await server.PostAsync(path, "");

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Contains("is not in the model repository; its models are ['linear', 'other']", body!["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task Load_BadConfig_Returns400NamingTheSetting_AndTheServedVersionKeepsServing()
    {
        var root = Repository();
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModelRepository(root));
        File.WriteAllText(Path.Combine(root, "linear", "config.json"), """{"max_batch_size": 0}""");

        var (load, loadBody) = await server.PostAsync("/v2/repository/models/linear/load", "");
        var (infer, inferBody) = await server.PostAsync("/v2/models/linear/infer", OnnxTestModels.InferBody(Sample, 1));
        var (_, index) = await server.PostAsync("/v2/repository/index", "");

        Assert.Equal(HttpStatusCode.BadRequest, load.StatusCode);
        Assert.Contains("MaxBatchSize = 0 is not allowed", loadBody!["error"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.OK, infer.StatusCode);
        Approx.AssertClose(Reference(root, 2), Output(inferBody));
        Assert.Contains(index!.AsArray(), e => e!["version"]!.GetValue<string>() == "2" && e["state"]!.GetValue<string>() == "READY");
    }

    [Fact]
    public async Task Load_PickedVersionWithACorruptModel_Returns400NamingIt_AndTheServedVersionKeepsServing()
    {
        var root = Repository();
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModelRepository(root));
        var corrupt = Path.Combine(root, "linear", "3", "model.onnx");
        Directory.CreateDirectory(Path.GetDirectoryName(corrupt)!);
        File.WriteAllBytes(corrupt, [.. File.ReadAllBytes(Path.Combine(root, "linear", "2", "model.onnx")).Take(40)]);

        var (load, loadBody) = await server.PostAsync("/v2/repository/models/linear/load", "");
        var (infer, inferBody) = await server.PostAsync("/v2/models/linear/infer", OnnxTestModels.InferBody(Sample, 1));
        var (v3, _) = await server.PostAsync("/v2/models/linear/versions/3/infer", OnnxTestModels.InferBody(Sample, 1));
        var (_, index) = await server.PostAsync("/v2/repository/index", "");

        Assert.Equal(HttpStatusCode.BadRequest, load.StatusCode);
        Assert.Contains(corrupt, loadBody!["error"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.OK, infer.StatusCode);
        Assert.Equal("2", inferBody!["model_version"]!.GetValue<string>());
        Approx.AssertClose(Reference(root, 2), Output(inferBody));
        Assert.Equal(HttpStatusCode.NotFound, v3.StatusCode);
        Assert.Contains(index!.AsArray(), e => e!["version"]!.GetValue<string>() == "2" && e["state"]!.GetValue<string>() == "READY");
    }

    [Fact]
    public async Task ConfigJson_EverySettingBesidesMaxBatchSize_TakesEffect()
    {
        var root = Repository("""
            {"max_queue_size": 1, "max_queue_delay_microseconds": 250, "max_concurrent_runs": 2, "dynamic_batching": false,
             "intra_op_num_threads": 1, "watch_for_changes": false}
            """);
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModelRepository(root), o => o.RetryAfterSeconds = 2);
        var model = server.Model("linear");

        var options = model.Options;
        Assert.Equal(
            (1, 250L, 2, (bool?)false, 1, false),
            (options.MaxQueueSize, options.MaxQueueDelayMicroseconds, options.MaxConcurrentRuns, options.DynamicBatching, options.IntraOpNumThreads, options.WatchForChanges));
        // dynamic_batching: false keeps even the exporter's shared batch axis from merging requests.
        Assert.False(model.Current!.Batchable);

        // max_queue_size: 1, as served: with one request held in the queue the next is refused.
        var gate = new TaskCompletionSource();
        model.RunGate = gate.Task;
        var first = server.PostAsync("/v2/models/linear/infer", OnnxTestModels.InferBody(Sample, 1));
        await Wait.UntilAsync(() => model.QueueLength == 1, "the first request to queue");
        var (refused, refusedBody) = await server.PostAsync("/v2/models/linear/infer", OnnxTestModels.InferBody(Sample, 1));
        model.RunGate = null;
        gate.SetResult();

        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Contains("exceeds maximum queue size", refusedBody!["error"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.OK, (await first).Response.StatusCode);
    }

    [Fact]
    public async Task Load_UnknownSetting_Returns400ListingTheSettings()
    {
        var root = Repository("""{"max_batch": 4}""");
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModelRepository(root, loadAllOnStart: false));

        var (load, body) = await server.PostAsync("/v2/repository/models/linear/load", "");

        Assert.Equal(HttpStatusCode.BadRequest, load.StatusCode);
        Assert.Contains("'max_batch' is not a setting; the settings are [max_batch_size,", body!["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task Load_NewVersionFolder_ServesItAfterTheLoad()
    {
        var root = Repository();
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModelRepository(root));
        Directory.CreateDirectory(Path.Combine(root, "linear", "3"));
        OnnxTestModels.Linear(Path.Combine(root, "linear", "3", "model.onnx"), seed: 9);

        var (load, _) = await server.PostAsync("/v2/repository/models/linear/load", "");
        var (infer, body) = await server.PostAsync("/v2/models/linear/infer", OnnxTestModels.InferBody(Sample, 1));

        Assert.Equal(HttpStatusCode.OK, load.StatusCode);
        Assert.Equal("3", body!["model_version"]!.GetValue<string>());
        Approx.AssertClose(Reference(root, 3), Output(body));
        Assert.Equal(HttpStatusCode.OK, infer.StatusCode);
    }

    [Fact]
    public async Task FileWatch_VersionFileReplaced_ReloadsInPlace()
    {
        var root = Repository("""{"version_policy": {"specific": {"versions": [1]}}}""");
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModelRepository(root));
        var model = server.Model("linear");
        var replacement = OnnxTestModels.Linear(_dir.Combine("replacement.onnx"), seed: 7);
        var target = Path.Combine(root, "linear", "1", "model.onnx");

        File.Copy(replacement, target + ".tmp");
        File.Move(target + ".tmp", target, overwrite: true);
        await Wait.UntilAsync(() => model.Current!.Generation >= 2, "the replaced version's reload");
        var (_, body) = await server.PostAsync("/v2/models/linear/versions/1/infer", OnnxTestModels.InferBody(Sample, 1));

        Assert.Equal(2, model.Current!.Generation);
        Approx.AssertClose(OnnxTestModels.Reference(replacement, Sample, [1, 4]), Output(body));
    }

    [Fact]
    public async Task Load_FolderNamedLikeAModelAddedByPath_Returns400AndThatModelKeepsServing()
    {
        var root = Repository();
        var byPath = OnnxTestModels.Linear(_dir.Combine("by-path.onnx"), seed: 5);
        await using var server = await InferenceTestServer.StartAsync(b => b.AddModel("linear", byPath, o => o.WatchForChanges = false).AddModelRepository(root));

        var (load, loadBody) = await server.PostAsync("/v2/repository/models/linear/load", "");
        var (_, index) = await server.PostAsync("/v2/repository/index", "");
        var (_, inferBody) = await server.PostAsync("/v2/models/linear/infer", OnnxTestModels.InferBody(Sample, 1));

        Assert.Equal(HttpStatusCode.BadRequest, load.StatusCode);
        Assert.Contains("model 'linear' is added by path (AddModel)", loadBody!["error"]!.GetValue<string>());
        Assert.All(index!.AsArray().Where(e => e!["name"]!.GetValue<string>() == "linear"), e => Assert.Equal("UNAVAILABLE", e!["state"]!.GetValue<string>()));
        Approx.AssertClose(OnnxTestModels.Reference(byPath, Sample, [1, 4]), Output(inferBody));
    }
}
