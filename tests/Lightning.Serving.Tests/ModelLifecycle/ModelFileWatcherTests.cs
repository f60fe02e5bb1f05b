using System.Text;
using Lightning.Testing;

namespace Lightning.Serving.Tests.ModelLifecycle;

public sealed class ModelFileWatcherTests : IDisposable
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(15);
    private readonly TempDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Reload_FileStillHeldByItsWriter_RetriedUntilTheWriterLetsGo()
    {
        var path = _dir.Combine("model.txt");
        await File.WriteAllTextAsync(path, "first");
        var locked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var watcher = new ModelFileWatcher<string>(path, Encoding.UTF8.GetString, TimeSpan.FromMilliseconds(20))
        {
            FileLocked = () => locked.TrySetResult(),
        };
        watcher.Load();
        watcher.Watch();
        var reloaded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        watcher.ReloadToken!.RegisterChangeCallback(_ => reloaded.TrySetResult(), null);

        // A writer that holds the file exclusively, writes it in pieces and lets go only after the reload found it held.
        using (var writer = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None))
        {
            foreach (var piece in new[] { "sec", "ond" })
            {
                writer.Write(Encoding.UTF8.GetBytes(piece));
                writer.Flush();
            }
            await locked.Task.WaitAsync(s_timeout);
        }

        await reloaded.Task.WaitAsync(s_timeout);
        Assert.Equal("second", watcher.Model);
    }
}
