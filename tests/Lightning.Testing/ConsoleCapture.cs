namespace Lightning.Testing;

/// <summary>What an action writes to <see cref="Console.Out"/>; the test collections run one at a time, so swapping it is safe.</summary>
public static class ConsoleCapture
{
    public static string Out(Action action)
    {
        var original = Console.Out;
        var captured = new StringWriter();
        Console.SetOut(captured);
        try { action(); }
        finally { Console.SetOut(original); }
        return captured.ToString();
    }
}
