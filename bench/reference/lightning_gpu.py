"""PyTorch Lightning's side of the GPU benchmark (bench/Lightning.Benchmarks/GpuBenchmark.cs drives it).

The .NET benchmark starts this script once with --serve and alternates its own runs with this script's, so both sides
share the machine's state; each request line `run <model> <precision> <seed> <epochs>` is answered by
`result <seconds of the last epoch> <last loss>`. Same models (a Fashion-MNIST-shaped CNN and an MLP), data (the
dataset where installed, else generated images of its shape), batches (256, one fixed order), optimizer (Adam 1e-3)
and Trainer settings (no progress bar, summary, checkpoints or logger) as the .NET side.

    python3 lightning_gpu.py --serve --device cuda [--data /usr/share/datasets/fashion-mnist] [--samples 60000]
    python3 lightning_gpu.py --self-test      # one short raw-torch run of each model on the CPU; no Lightning needed

--side raw times a hand-written loop instead of Lightning's Trainer: it lets the protocol be tested where Lightning is
not installed, and is never what the benchmark's ratios report.
"""
import argparse
import contextlib
import gzip
import os
import sys
import time
import warnings

import torch
from torch import nn

BATCH = 256


def read_idx(folder, name, offset):
    path = os.path.join(folder, name)
    if os.path.exists(path):
        opener = open
    elif os.path.exists(path + ".gz"):
        opener, path = gzip.open, path + ".gz"
    else:
        return None
    with opener(path, "rb") as f:
        return torch.frombuffer(bytearray(f.read()[offset:]), dtype=torch.uint8)


def dataset(folder, samples):
    """Fashion-MNIST's training images and labels where the files exist, else generated ones of the same shape."""
    images, labels = read_idx(folder, "train-images-idx3-ubyte", 16), read_idx(folder, "train-labels-idx1-ubyte", 8)
    if images is not None and labels is not None:
        x = images.view(-1, 1, 28, 28)[:samples].float().div_(255)
        return x, labels.long()[:samples], "fashion-mnist"
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(samples, 1, 28, 28, generator=generator)
    return x, torch.randint(0, 10, (samples,), generator=generator), "generated"


def batches(x, y):
    return [(x[i:i + BATCH], y[i:i + BATCH]) for i in range(0, len(x), BATCH)]


def make_net(kind):
    if kind == "cnn":
        return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
    if kind == "mlp":
        return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                             nn.Linear(512, 10))
    raise ValueError(f"model '{kind}' is not known: use cnn or mlp")


def synchronize(device):
    if device == "cuda":
        torch.cuda.synchronize()


def run_raw(kind, precision, seed, epochs, data, device):
    """A hand-written loop with the same autocast/GradScaler as Lightning's precision plugins."""
    torch.manual_seed(seed)
    net = make_net(kind).to(device)
    optimizer = torch.optim.Adam(net.parameters(), 1e-3)
    dtype = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}.get(precision)
    scaler = torch.cuda.amp.GradScaler() if precision == "16-mixed" else None
    seconds, loss = 0.0, float("nan")
    for _ in range(epochs):
        synchronize(device)
        start = time.perf_counter()
        for x, y in data:
            x, y = x.to(device), y.to(device)
            with torch.autocast(device, dtype=dtype) if dtype else contextlib.nullcontext():
                value = nn.functional.cross_entropy(net(x), y)
            optimizer.zero_grad()
            if scaler:
                scaler.scale(value).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                value.backward()
                optimizer.step()
        synchronize(device)
        seconds, loss = time.perf_counter() - start, value.item()
    return seconds, loss


def run_lightning(kind, precision, seed, epochs, data, device):
    try:
        import lightning.pytorch as pl
    except ImportError:
        import pytorch_lightning as pl

    class Classifier(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = make_net(kind)

        def training_step(self, batch, batch_idx):
            x, y = batch
            self.last_loss = nn.functional.cross_entropy(self.net(x), y)
            return self.last_loss

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), 1e-3)

    class EpochTimer(pl.Callback):
        def on_train_epoch_start(self, trainer, module):
            synchronize(device)
            self.start = time.perf_counter()

        def on_train_epoch_end(self, trainer, module):
            synchronize(device)
            self.seconds = time.perf_counter() - self.start

    torch.manual_seed(seed)
    module, timer = Classifier(), EpochTimer()
    trainer = pl.Trainer(max_epochs=epochs, accelerator=device, devices=1, precision=precision, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[timer])
    trainer.fit(module, data)
    return timer.seconds, module.last_loss.item()


def lightning_version():
    try:
        import lightning.pytorch as pl
    except ImportError:
        import pytorch_lightning as pl
    return pl.__version__


def serve(args):
    run = run_raw if args.side == "raw" else run_lightning
    try:
        version = "raw torch loop" if args.side == "raw" else f"lightning {lightning_version()}"
    except ImportError as e:
        print(f"error pytorch_lightning is not importable ({e}); install pytorch-lightning 2.6.6", flush=True)
        return 3
    warnings.filterwarnings("ignore")
    x, y, source = dataset(args.data, args.samples)
    data = batches(x, y)
    print(f"ready torch {torch.__version__}, {version}, device {args.device}, data {source} {len(x)}", flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words:
            continue
        if words[0] == "quit":
            break
        try:
            kind, precision, seed, epochs = words[1], words[2], int(words[3]), int(words[4])
            # Anything the run prints goes to stderr: stdout carries only the protocol's lines.
            with contextlib.redirect_stdout(sys.stderr):
                seconds, loss = run(kind, precision, seed, epochs, data, args.device)
            print(f"result {seconds:.6f} {loss:.6f}", flush=True)
        except Exception as e:  # the driver reports it and stops; one line keeps the protocol intact
            print(f"error {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}", flush=True)
    return 0


def self_test(args):
    """The pure-torch parts on a small sample: data, both models, the raw loop in 32-bit and CPU bf16 autocast."""
    x, y, source = dataset(args.data, 512)
    data = batches(x, y)
    for kind in ("cnn", "mlp"):
        for precision in ("32-true", "bf16-mixed"):
            seconds, loss = run_raw(kind, precision, 1, 1, data, "cpu")
            assert loss == loss, f"{kind} {precision}: loss is NaN"
            print(f"self-test {kind} {precision} ({source}): {seconds:.3f} s, loss {loss:.4f}")
    return 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--serve", action="store_true")
    parser.add_argument("--self-test", action="store_true")
    parser.add_argument("--device", default="cuda", choices=["cpu", "cuda"])
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--samples", type=int, default=60000)
    parser.add_argument("--side", default="lightning", choices=["lightning", "raw"])
    args = parser.parse_args()
    if args.self_test:
        return self_test(args)
    if args.serve:
        return serve(args)
    parser.error("give --serve (driven by the .NET benchmark) or --self-test")


if __name__ == "__main__":
    sys.exit(main())
