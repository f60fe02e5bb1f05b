using System.Globalization;
using System.Text;
using static TorchSharp.torch;

namespace Lightning.Callbacks;

/// <summary>
/// Prints the module's layers with their types and parameter counts when a fit starts, then the totals, as Lightning's
/// <c>ModelSummary</c>. The trainer adds one unless <see cref="TrainerOptions.EnableModelSummary"/> is false.
/// </summary>
public sealed class ModelSummary : Callback
{
    private readonly TextWriter? _output;

    /// <summary>Summarises layers down to <paramref name="maxDepth"/> levels (1: direct children) on the console.</summary>
    public ModelSummary(int maxDepth = 1) : this(Console.Out, maxDepth) { }

    /// <summary>Summarises on <paramref name="output"/> (null: computes the table without printing it).</summary>
    public ModelSummary(TextWriter? output, int maxDepth = 1)
    {
        if (maxDepth < 1) throw new ArgumentOutOfRangeException(nameof(maxDepth), maxDepth, $"maxDepth = {maxDepth} is not allowed: it must be 1 or more.");
        (_output, MaxDepth) = (output, maxDepth);
    }

    /// <summary>How many levels of submodules the table lists.</summary>
    public int MaxDepth { get; }

    /// <summary>The table printed at the last fit start.</summary>
    public string? Summary { get; private set; }

    /// <inheritdoc />
    public override void OnFitStart(Trainer trainer, LightningModule module)
    {
        Summary = Describe(module, MaxDepth);
        _output?.Write(Summary);
    }

    /// <summary>The summary table of <paramref name="module"/>.</summary>
    public static string Describe(nn.Module module, int maxDepth = 1)
    {
        ArgumentNullException.ThrowIfNull(module);
        var inv = CultureInfo.InvariantCulture;
        var rows = module.named_modules()
            .Where(m => m.name.Length > 0 && m.name.Count(c => c == '.') < maxDepth)
            .Select((m, i) => (Index: i, m.name, Type: m.module.GetType().Name, Params: m.module.parameters().Sum(p => p.numel())))
            .ToList();
        var nameWidth = Math.Max(4, rows.Select(r => r.name.Length).DefaultIfEmpty(0).Max());
        var typeWidth = Math.Max(4, rows.Select(r => r.Type.Length).DefaultIfEmpty(0).Max());
        var text = new StringBuilder()
            .AppendLine(string.Format(inv, "  | {0} | {1} | {2,8}", "Name".PadRight(nameWidth), "Type".PadRight(typeWidth), "Params"))
            .AppendLine(new string('-', nameWidth + typeWidth + 19));
        foreach (var row in rows)
            text.AppendLine(string.Format(inv, "{0,-2}| {1} | {2} | {3,8}", row.Index, row.name.PadRight(nameWidth), row.Type.PadRight(typeWidth), Count(row.Params)));
        long trainable = module.parameters().Where(p => p.requires_grad).Sum(p => p.numel());
        long total = module.parameters().Sum(p => p.numel());
        text.AppendLine(new string('-', nameWidth + typeWidth + 19))
            .AppendLine(string.Format(inv, "{0,-8} Trainable params", Count(trainable)))
            .AppendLine(string.Format(inv, "{0,-8} Non-trainable params", Count(total - trainable)))
            .AppendLine(string.Format(inv, "{0,-8} Total params", Count(total)))
            .AppendLine(string.Format(inv, "{0:0.000}    Total estimated model params size (MB)", total * 4 / 1e6));
        return text.ToString();
    }

    private static string Count(long n) => n switch
    {
        >= 1_000_000_000 => (n / 1e9).ToString("0.0", CultureInfo.InvariantCulture) + " B",
        >= 1_000_000 => (n / 1e6).ToString("0.0", CultureInfo.InvariantCulture) + " M",
        >= 1_000 => (n / 1e3).ToString("0.0", CultureInfo.InvariantCulture) + " K",
        _ => n.ToString(CultureInfo.InvariantCulture),
    };
}
