using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Lightning.Data;
using Lightning.Testing;

namespace Lightning.Core.Tests.Data;

/// <summary>An HTTP server on 127.0.0.1 serving fixed bytes by path; any other path answers 404.</summary>
internal sealed class LocalHttpServer : IDisposable
{
    private readonly HttpListener _listener = new();
    private readonly IReadOnlyDictionary<string, byte[]> _files;
    private readonly Task _loop;

    public LocalHttpServer(IReadOnlyDictionary<string, byte[]> files)
    {
        _files = files;
        Port = FreePort();
        _listener.Prefixes.Add($"http://127.0.0.1:{Port}/");
        _listener.Start();
        _loop = Task.Run(Serve);
    }

    public int Port { get; }

    public Uri Root => new($"http://127.0.0.1:{Port}/");

    /// <summary>The paths requested, in order.</summary>
    public ConcurrentQueue<string> Requests { get; } = new();

    /// <summary>A port nothing listens on (it was free a moment ago).</summary>
    public static int FreePort()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        try { return ((IPEndPoint)probe.LocalEndpoint).Port; }
        finally { probe.Stop(); }
    }

    private async Task Serve()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try { context = await _listener.GetContextAsync(); }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException) { return; }
            try
            {
                var path = context.Request.Url!.AbsolutePath;
                Requests.Enqueue(path);
                if (_files.TryGetValue(path, out var bytes))
                {
                    context.Response.StatusCode = 200;
                    context.Response.ContentLength64 = bytes.Length;
                    await context.Response.OutputStream.WriteAsync(bytes);
                }
                else context.Response.StatusCode = 404;
            }
            catch (Exception e) when (e is HttpListenerException or IOException or ObjectDisposedException) { }
            finally
            {
                try { context.Response.Close(); }
                catch (Exception e) when (e is HttpListenerException or IOException or ObjectDisposedException) { }
            }
        }
    }

    public void Dispose()
    {
        if (_listener.IsListening) _listener.Stop();
        _listener.Close();
        _loop.Wait(TimeSpan.FromSeconds(5));
    }
}

public class DownloadTests
{
    private static readonly TimeSpan ShortTimeout = TimeSpan.FromSeconds(10);

    private static byte[] Payload(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static string Sha256(byte[] bytes) => Convert.ToHexString(SHA256.HashData(bytes));

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(300_000)]
    public void Download_PutsTheExactBytesAtTheDestination(int length)
    {
        using var temp = new TempDirectory();
        var payload = Payload(length, seed: length);
        using var server = new LocalHttpServer(new Dictionary<string, byte[]> { ["/data/file.bin"] = payload });
        var destination = temp.Combine("nested", "file.bin");

        // Upper-case hex: the comparison ignores case.
        DatasetDownloader.Download(new Uri(server.Root, "data/file.bin"), destination, Sha256(payload).ToUpperInvariant(), timeout: ShortTimeout);

        Assert.Equal(payload, File.ReadAllBytes(destination));
        Assert.Equal(new[] { destination }, Directory.GetFileSystemEntries(temp.Combine("nested")));
    }

    [Fact]
    public void Download_ReplacesAnExistingFileOnlyWhenVerified()
    {
        using var temp = new TempDirectory();
        var payload = Payload(1000, seed: 8);
        using var server = new LocalHttpServer(new Dictionary<string, byte[]> { ["/file.bin"] = payload });
        var destination = temp.Combine("file.bin");
        File.WriteAllBytes(destination, [1, 2, 3]);

        Assert.Throws<InvalidDataException>(() =>
            DatasetDownloader.Download(new Uri(server.Root, "file.bin"), destination, new string('0', 64), timeout: ShortTimeout));
        Assert.Equal(new byte[] { 1, 2, 3 }, File.ReadAllBytes(destination));

        DatasetDownloader.Download(new Uri(server.Root, "file.bin"), destination, Sha256(payload).ToLowerInvariant(), timeout: ShortTimeout);
        Assert.Equal(payload, File.ReadAllBytes(destination));
        Assert.Single(Directory.GetFileSystemEntries(temp.Path));
    }

    [Fact]
    public void Download_WrongChecksumNamesBothHashesAndLeavesNothing()
    {
        using var temp = new TempDirectory();
        var payload = Payload(100_000, seed: 9);
        using var server = new LocalHttpServer(new Dictionary<string, byte[]> { ["/file.bin"] = payload });
        var expected = Sha256(Payload(100_000, seed: 10)).ToLowerInvariant();
        var url = new Uri(server.Root, "file.bin");

        var error = Assert.Throws<InvalidDataException>(() =>
            DatasetDownloader.Download(url, temp.Combine("file.bin"), expected, timeout: ShortTimeout));

        Assert.Contains(url.ToString(), error.Message);
        Assert.Contains(expected, error.Message);
        Assert.Contains(Sha256(payload).ToLowerInvariant(), error.Message);
        Assert.Empty(Directory.GetFileSystemEntries(temp.Path));
    }

    [Fact]
    public void Download_NotFoundThrowsIOExceptionAndLeavesNothing()
    {
        using var temp = new TempDirectory();
        using var server = new LocalHttpServer(new Dictionary<string, byte[]>());
        var url = new Uri(server.Root, "missing.gz");

        var error = Assert.Throws<IOException>(() =>
            DatasetDownloader.Download(url, temp.Combine("sub", "missing.gz"), new string('a', 64), timeout: ShortTimeout));

        Assert.Contains(url.ToString(), error.Message);
        Assert.Contains("404", error.Message);
        Assert.Equal(new[] { "/missing.gz" }, server.Requests);
        Assert.Empty(Directory.GetFileSystemEntries(temp.Path));
    }

    [Fact]
    public void Download_ClosedPortThrowsIOExceptionAndLeavesNothing()
    {
        using var temp = new TempDirectory();
        var url = new Uri($"http://127.0.0.1:{LocalHttpServer.FreePort()}/file.gz");

        var error = Assert.Throws<IOException>(() =>
            DatasetDownloader.Download(url, temp.Combine("file.gz"), new string('a', 64), timeout: ShortTimeout));

        Assert.Contains(url.ToString(), error.Message);
        Assert.NotNull(error.InnerException);
        Assert.Empty(Directory.GetFileSystemEntries(temp.Path));
    }

    [Fact]
    public void Download_SilentServerTimesOutWithIOExceptionAndLeavesNothing()
    {
        using var temp = new TempDirectory();
        // Connections complete in the listen backlog, but nobody ever answers.
        var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        try
        {
            var url = new Uri($"http://127.0.0.1:{((IPEndPoint)silent.LocalEndpoint).Port}/file.gz");
            var clock = System.Diagnostics.Stopwatch.StartNew();

            var error = Assert.Throws<IOException>(() =>
                DatasetDownloader.Download(url, temp.Combine("file.gz"), new string('a', 64), timeout: TimeSpan.FromSeconds(1)));

            Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(10));
            Assert.Contains(url.ToString(), error.Message);
            Assert.Contains("1 s", error.Message);
            Assert.Empty(Directory.GetFileSystemEntries(temp.Path));
        }
        finally
        {
            silent.Stop();
        }
    }

    [Fact]
    public void Download_UsesTheGivenClientWithoutDisposingIt()
    {
        using var temp = new TempDirectory();
        var payload = Payload(5000, seed: 11);
        using var server = new LocalHttpServer(new Dictionary<string, byte[]> { ["/a"] = payload, ["/b"] = payload });
        using var client = new HttpClient();

        DatasetDownloader.Download(new Uri(server.Root, "a"), temp.Combine("a"), Sha256(payload), client, ShortTimeout);
        DatasetDownloader.Download(new Uri(server.Root, "b"), temp.Combine("b"), Sha256(payload), client, ShortTimeout);

        Assert.Equal(payload, File.ReadAllBytes(temp.Combine("a")));
        Assert.Equal(payload, File.ReadAllBytes(temp.Combine("b")));
    }

    [Fact]
    public void Download_RejectsAMalformedHash()
    {
        using var temp = new TempDirectory();
        Assert.Throws<ArgumentException>(() =>
            DatasetDownloader.Download(new Uri("http://127.0.0.1:1/x"), temp.Combine("x"), "not-a-hash"));
        Assert.Empty(Directory.GetFileSystemEntries(temp.Path));
    }
}
