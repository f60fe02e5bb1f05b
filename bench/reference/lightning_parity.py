"""PyTorch Lightning on the parity bench's two cases, measured the same way, for comparison with `-- parity`.

Same models, data, batch sizes, epochs per run and procedure as bench/Lightning.Benchmarks/ParityBenchmark.cs: three
warm-up runs of each side, then alternating raw/Trainer pairs; the Trainer keeps its defaults for the progress bar,
checkpoints and logger. Prints per-run times and, last, `parity: trainer/raw = R (loss diff = D)` for the worst case.

    python3 lightning_parity.py --data /usr/share/datasets/fashion-mnist [--pairs 5] [--warmups 3] [--device cpu|cuda]
"""
import argparse
import gc
import gzip
import os
import shutil
import statistics
import tempfile
import time
import warnings

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

try:
    import lightning.pytorch as pl
except ImportError:
    import pytorch_lightning as pl


def read_idx_images(folder):
    path = os.path.join(folder, "train-images-idx3-ubyte")
    opener = open if os.path.exists(path) else gzip.open
    with opener(path if os.path.exists(path) else path + ".gz", "rb") as f:
        data = f.read()
    count = int.from_bytes(data[4:8], "big")
    return torch.from_numpy(np.frombuffer(data, dtype=np.uint8, offset=16).copy()).view(count, 1, 28, 28).float() / 255


class LstmRegressor(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(10, 20, batch_first=True)
        self.linear = nn.Linear(20, 5)

    def forward(self, x):
        return self.linear(self.rnn(x)[0])


class ParityModule(pl.LightningModule):
    def __init__(self, net, autoencode, lr):
        super().__init__()
        self.net, self.autoencode, self.lr = net, autoencode, lr

    def loss(self, batch):
        if not self.autoencode:
            return nn.functional.mse_loss(self.net(batch[0]), batch[1])
        x = batch[0].view(batch[0].size(0), -1)
        return nn.functional.mse_loss(self.net(x), x)

    def training_step(self, batch, batch_idx):
        return self.loss(batch)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), self.lr)


def autoencoder_case(data_folder):
    images = read_idx_images(data_folder)
    dataset = TensorDataset(images, torch.zeros(len(images), dtype=torch.long))

    def model():
        return ParityModule(nn.Sequential(nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 3), nn.ReLU(), nn.Linear(3, 64),
                                          nn.ReLU(), nn.Linear(64, 784)), autoencode=True, lr=1e-3)

    def loader():
        return DataLoader(dataset, batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(7))

    return "autoencoder (Fashion-MNIST 60k, batch 64)", model, loader, 1


def rnn_case():
    generator = torch.Generator().manual_seed(11)
    x = torch.randn(300, 100, 10, generator=generator)
    y = x[:, :, :5] + x[:, :, 5:].roll(1, -1)
    dataset = TensorDataset(x, y)
    return ("parity RNN (LSTM 10->20, Linear 5, batch 30)",
            lambda: ParityModule(LstmRegressor(), autoencode=False, lr=0.02),
            lambda: DataLoader(dataset, batch_size=30, shuffle=False), 20)


def raw(model, loader, epochs, device):
    model.to(device).train()
    optimizer = model.configure_optimizers()
    loss = float("nan")
    for _ in range(epochs):
        for batch in loader:
            batch = [t.to(device) for t in batch]
            value = model.loss(batch)
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
            loss = value.item()
    return loss


class LastLoss(pl.Callback):
    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        module.last_loss = (outputs["loss"] if isinstance(outputs, dict) else outputs).item()


def timed(case, use_trainer, seed, device):
    _, make_model, make_loader, epochs = case
    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
    torch.manual_seed(seed)
    model, loader = make_model(), make_loader()
    root = tempfile.mkdtemp(prefix="lightning-parity-")
    start = time.perf_counter()
    if use_trainer:
        trainer = pl.Trainer(max_epochs=epochs, accelerator=device, devices=1, default_root_dir=root,
                             enable_model_summary=False, callbacks=[LastLoss()])
        trainer.fit(model, loader)
        loss = model.last_loss
    else:
        loss = raw(model, loader, epochs, device)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    shutil.rmtree(root, ignore_errors=True)
    return seconds, loss


def compare(case, pairs, warmups, device):
    print(case[0], flush=True)
    for _ in range(warmups):
        timed(case, False, 0, device)
        timed(case, True, 0, device)
    ratios, loss_diff = [], 0.0
    for run in range(1, pairs + 1):
        if run % 2 == 1:
            raw_s, raw_loss = timed(case, False, run, device)
            tr_s, tr_loss = timed(case, True, run, device)
        else:
            tr_s, tr_loss = timed(case, True, run, device)
            raw_s, raw_loss = timed(case, False, run, device)
        ratios.append(tr_s / raw_s)
        loss_diff = max(loss_diff, abs(tr_loss - raw_loss))
        print(f"  run {run}: raw {raw_s:.3f}s  trainer {tr_s:.3f}s  ratio {tr_s / raw_s:.3f}  "
              f"losses {raw_loss:.6f} / {tr_loss:.6f}", flush=True)
    return statistics.median(ratios), loss_diff


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--warmups", type=int, default=3)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    print(f"torch {torch.__version__}, lightning {pl.__version__}, device {args.device}, threads {args.threads}")
    results = [compare(autoencoder_case(args.data), args.pairs, args.warmups, args.device),
               compare(rnn_case(), args.pairs, args.warmups, args.device)]
    worst = max(results, key=lambda r: r[0])
    print(f"parity: trainer/raw = {worst[0]:.3f} (loss diff = {max(r[1] for r in results):.3g})")


if __name__ == "__main__":
    main()
