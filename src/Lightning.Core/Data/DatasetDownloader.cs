using System.Security.Cryptography;
using Lightning.IO;

namespace Lightning.Data;

/// <summary>
/// Downloads dataset files with SHA-256 verification. A file is written to a temporary name in the destination folder
/// while it is hashed and renamed into place only when its hash matches, so a failed or corrupted download never
/// leaves a partial file at the destination, nor a temporary file behind.
/// </summary>
public static class DatasetDownloader
{
    /// <summary>How long <see cref="Download"/> waits for the server, when no timeout is given.</summary>
    public static TimeSpan DefaultTimeout { get; } = TimeSpan.FromSeconds(100);

    private const int BufferSize = 1 << 16;

    /// <summary>Downloads <paramref name="source"/> to <paramref name="destinationPath"/> and checks its SHA-256.</summary>
    /// <param name="source">An absolute http or https address.</param>
    /// <param name="destinationPath">Where the file goes; its folder is created when missing. An existing file is replaced.</param>
    /// <param name="sha256">The expected SHA-256 of the file, 64 hexadecimal digits in either case.</param>
    /// <param name="client">The client to send the request with (not disposed); null: a new one for this download.</param>
    /// <param name="timeout">
    /// How long to wait for the response headers, and then for each chunk of data (default <see cref="DefaultTimeout"/>);
    /// a slow download that keeps receiving data does not time out.
    /// </param>
    /// <exception cref="IOException">
    /// The server answered with an error status, the network failed or the server went silent for
    /// <paramref name="timeout"/>. The message names the address and the reason; the inner exception is the cause.
    /// </exception>
    /// <exception cref="InvalidDataException">The downloaded file's SHA-256 differs from <paramref name="sha256"/>.</exception>
    public static void Download(Uri source, string destinationPath, string sha256, HttpClient? client = null, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        ArgumentException.ThrowIfNullOrEmpty(destinationPath);
        ArgumentNullException.ThrowIfNull(sha256);
        if (!source.IsAbsoluteUri || (source.Scheme != Uri.UriSchemeHttp && source.Scheme != Uri.UriSchemeHttps))
            throw new ArgumentException($"Cannot download '{source}': only absolute http and https addresses are supported.", nameof(source));
        if (sha256.Length != 64 || !sha256.All(Uri.IsHexDigit))
            throw new ArgumentException(
                $"'{sha256}' is not a SHA-256 hash: expected 64 hexadecimal digits.", nameof(sha256));
        var wait = timeout ?? DefaultTimeout;
        if (wait <= TimeSpan.Zero && wait != Timeout.InfiniteTimeSpan)
            throw new ArgumentOutOfRangeException(nameof(timeout), timeout, "The timeout must be positive or Timeout.InfiniteTimeSpan.");

        var destination = Path.GetFullPath(destinationPath);
        var folder = Path.GetDirectoryName(destination)!;
        bool createdFolder = !Directory.Exists(folder);
        Directory.CreateDirectory(folder);
        // A download killed mid-way leaves its temporary file behind; the next one clears it.
        DurableFile.RemoveStaleTemps(folder);
        var temporary = DurableFile.TempPathFor(destination);

        var ownClient = client is null;
        client ??= new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
        bool moved = false;
        try
        {
            var actual = Fetch(client, source, temporary, wait);
            if (!string.Equals(actual, sha256, StringComparison.OrdinalIgnoreCase))
                throw new InvalidDataException(
                    $"The download of '{source}' failed its SHA-256 check: expected {sha256.ToLowerInvariant()}, got {actual}. " +
                    $"The file was discarded; the server may hold a different version of the file or a corrupted copy.");
            DurableFile.Commit(temporary, destination);
            moved = true;
        }
        finally
        {
            if (!moved)
            {
                TryDelete(temporary);
                if (createdFolder) TryRemoveEmptyFolder(folder);
            }
            if (ownClient) client.Dispose();
        }
    }

    /// <summary>Writes the response body to <paramref name="temporary"/>; returns its SHA-256 in lower-case hex.</summary>
    private static string Fetch(HttpClient client, Uri source, string temporary, TimeSpan wait)
    {
        using var timer = new CancellationTokenSource();
        using var request = new HttpRequestMessage(HttpMethod.Get, source);
        HttpResponseMessage response;
        try
        {
            timer.CancelAfter(wait);
            response = client.Send(request, HttpCompletionOption.ResponseHeadersRead, timer.Token);
        }
        catch (Exception e) when (e is HttpRequestException or OperationCanceledException)
        {
            throw Failure(source, e, timer.IsCancellationRequested ? $"no answer within {Seconds(wait)}" : null);
        }

        using (response)
        {
            if (!response.IsSuccessStatusCode)
            {
                var status = $"{(int)response.StatusCode} {response.ReasonPhrase ?? response.StatusCode.ToString()}".Trim();
                throw new IOException($"Downloading '{source}' failed: the server answered {status}.",
                    new HttpRequestException($"Response status code {status}.", null, response.StatusCode));
            }

            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            long length;
            try
            {
                using var body = response.Content.ReadAsStream(timer.Token);
                // A blocked synchronous read does not watch the token; disposing the response aborts it.
                using var abort = timer.Token.Register(response.Dispose);
                using var output = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, BufferSize);
                var buffer = new byte[BufferSize];
                while (true)
                {
                    timer.CancelAfter(wait);
                    int read = body.Read(buffer, 0, buffer.Length);
                    if (read == 0) break;
                    hash.AppendData(buffer, 0, read);
                    output.Write(buffer, 0, read);
                }
                length = output.Length;
            }
            catch (Exception e) when (e is IOException or HttpRequestException or OperationCanceledException or ObjectDisposedException)
            {
                throw Failure(source, e, timer.IsCancellationRequested ? $"no data for {Seconds(wait)}" : null);
            }
            if (response.Content.Headers.ContentLength is { } announced && length != announced)
                throw new IOException($"Downloading '{source}' failed: the server announced {announced} bytes but sent {length}.");
            return Convert.ToHexStringLower(hash.GetHashAndReset());
        }
    }

    private static IOException Failure(Uri source, Exception cause, string? reason) =>
        new($"Downloading '{source}' failed: {reason ?? Describe(cause)}.", cause);

    private static string Describe(Exception e)
    {
        var messages = new List<string>();
        for (var x = e; x is not null; x = x.InnerException)
        {
            var message = x.Message.TrimEnd('.');
            if (!messages.Any(m => m.Contains(message, StringComparison.OrdinalIgnoreCase))) messages.Add(message);
        }
        return string.Join(": ", messages);
    }

    private static string Seconds(TimeSpan t) => $"{t.TotalSeconds:0.#} s";

    private static void TryRemoveEmptyFolder(string folder)
    {
        try
        {
            if (!Directory.EnumerateFileSystemEntries(folder).Any()) Directory.Delete(folder);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }

    private static void TryDelete(string path)
    {
        try { File.Delete(path); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
