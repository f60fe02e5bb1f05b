using System.Text.RegularExpressions;
using Lightning.Callbacks;
using Lightning.Testing;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Lightning.Core.Tests.Callbacks;

/// <summary>The summary the trainer prints at fit start (<c>EnableModelSummary</c>) and the <c>ModelSummary</c> callback's depth.</summary>
public class ModelSummaryTests
{
    [Fact]
    public void EnableModelSummary_On_PrintsEveryLayerWithItsParameterCount()
    {
        using var root = new TempDirectory();
        var model = new TwoBlocks();

        var printed = ConsoleCapture.Out(() => new Trainer(TestTrainer.Quiet(root) with { EnableModelSummary = true, MaxEpochs = 1 })
            .Fit(model, RandomBatches.Create(2, features: 6)));

        // Expected counts from the module itself: one row per direct child (depth 1), then the totals.
        foreach (var (name, child) in model.named_children())
            Assert.Matches(new Regex($@"^\d+ +\| {Regex.Escape(name)} +\| {child.GetType().Name} +\| +{child.parameters().Sum(p => p.numel())}\r?$", RegexOptions.Multiline), printed);
        Assert.DoesNotMatch(new Regex(@"\| encoder\.", RegexOptions.Multiline), printed);   // depth 1 stops at direct children
        Assert.Matches(new Regex($@"^{model.parameters().Sum(p => p.numel())} +Total params\r?$", RegexOptions.Multiline), printed);
    }

    [Fact]
    public void EnableModelSummary_Off_PrintsNothing()
    {
        using var root = new TempDirectory();

        Trainer? trainer = null;
        var printed = ConsoleCapture.Out(() =>
        {
            trainer = new Trainer(TestTrainer.Quiet(root) with { EnableModelSummary = false, MaxEpochs = 1 });
            trainer.Fit(new TwoBlocks(), RandomBatches.Create(2, features: 6));
        });

        Assert.Equal("", printed);
        Assert.DoesNotContain(trainer!.Callbacks, c => c is ModelSummary);
    }

    [Fact]
    public void ModelSummaryCallback_MaxDepth2_ListsTheLayersInsideEachBlock()
    {
        using var root = new TempDirectory();
        var model = new TwoBlocks();
        var output = new StringWriter();

        new Trainer(TestTrainer.Quiet(root, new ModelSummary(output, maxDepth: 2)) with { MaxEpochs = 1 })
            .Fit(model, RandomBatches.Create(2, features: 6));

        var rows = Regex.Matches(output.ToString(), @"^\d+ +\| (\S+) +\| (\S+) +\| +(\d+)\r?$", RegexOptions.Multiline)
            .Select(m => (m.Groups[1].Value, m.Groups[2].Value, long.Parse(m.Groups[3].Value))).ToList();
        var expected = model.named_modules().Where(m => m.name.Length > 0 && m.name.Count(c => c == '.') <= 1)
            .Select(m => (m.name, m.module.GetType().Name, m.module.parameters().Sum(p => p.numel()))).ToList();
        Assert.Equal(expected, rows);
        Assert.Contains(("encoder.0", nameof(Linear), 6L * 5 + 5), rows);   // a layer inside a block, counted by hand
        Assert.DoesNotContain(rows, r => r.Item1.Count(c => c == '.') > 1);
    }

    /// <summary>Two blocks of different sizes (encoder 6→5→3, head 3→2), trained towards ones.</summary>
    private sealed class TwoBlocks : LightningModule<Tensor>
    {
        private readonly Sequential encoder = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3));
        private readonly Linear head = nn.Linear(3, 2);

        public TwoBlocks() : base(nameof(TwoBlocks)) => RegisterComponents();

        public override Tensor? TrainingStep(Tensor batch, int batchIdx)
        {
            var prediction = head.forward(encoder.forward(batch));
            return nn.functional.mse_loss(prediction, ones_like(prediction));
        }

        public override OptimizerConfiguration ConfigureOptimizers() => optim.SGD(parameters(), 0.1);
    }
}
