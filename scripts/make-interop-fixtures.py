#!/usr/bin/env python3
"""Writes the PyTorch-made fixtures of tests/Lightning.Core.Tests/Interop (run with a python3 that has torch:
Debian's `apt-get install python3-torch`, then `/usr/bin/python3 scripts/make-interop-fixtures.py`).

- dtypes.pt           torch.save of a dict with one tensor per dtype, a transposed (non-contiguous) tensor and a
                      slice that starts inside its storage
- dtypes.safetensors  the contiguous ones, written by the small safetensors writer below (the `safetensors` module is
                      not packaged for Debian; the format is an 8-byte header length, a JSON header, raw data)
- mlp.pt              torch.save(model.state_dict()) of Sequential(Linear(4, 3), ReLU(), Linear(3, 2))
- lightning.ckpt      the dict Lightning's Trainer.save_checkpoint writes, for a LightningModule whose attribute
                      `encoder` is that Sequential, after 3 epochs of 4 Adam steps (StepLR beside it)
- expected.json       every value above, flattened, for the tests to compare with

It also checks the reverse fixtures (files Lightning.NET's SaveStateDict wrote, committed beside these) with torch.load.
"""
import collections, json, os, struct, sys, types

import torch

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "Lightning.Core.Tests", "Interop", "Fixtures")
os.makedirs(HERE, exist_ok=True)
torch.manual_seed(0)


def flat(t):
    return [float(x) for x in t.detach().to(torch.float64).reshape(-1).tolist()]


def write_safetensors(path, tensors):
    codes = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64",
             torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL"}
    header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
    for name, t in tensors.items():
        t = t.contiguous()
        data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": codes[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header).encode()
    head += b" " * (-len(head) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(head)) + head + b"".join(blobs))


expected = {}

# One tensor per dtype PyTorch writes and TorchSharp has.
base = torch.arange(-6, 6, dtype=torch.float64).reshape(3, 4) / 4
dtypes = collections.OrderedDict([
    ("f32", base.to(torch.float32)), ("f64", base.clone()), ("f16", base.to(torch.float16)), ("bf16", base.to(torch.bfloat16)),
    ("i8", (base * 4).to(torch.int8)), ("i16", (base * 400).to(torch.int16)), ("i32", (base * 40000).to(torch.int32)),
    ("i64", (base * 4e12).to(torch.int64)), ("u8", (base * 4 + 6).to(torch.uint8)), ("bool", base > 0),
    ("scalar", torch.tensor(2.5)),
])
storage_tricks = collections.OrderedDict([
    ("transposed", torch.arange(12, dtype=torch.float32).reshape(3, 4).t()),   # strides (1, 4)
    ("sliced", torch.arange(10, dtype=torch.int64)[3:7]),                     # storage offset 3, storage of 10
])
torch.save(collections.OrderedDict(list(dtypes.items()) + list(storage_tricks.items())), os.path.join(HERE, "dtypes.pt"))
write_safetensors(os.path.join(HERE, "dtypes.safetensors"), dtypes)
expected["dtypes"] = {name: {"dtype": str(t.dtype).replace("torch.", ""), "shape": list(t.shape), "values": flat(t)}
                      for name, t in list(dtypes.items()) + list(storage_tricks.items())}
assert not storage_tricks["transposed"].is_contiguous() and storage_tricks["sliced"].storage_offset() == 3

# A plain state dict.
mlp = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
torch.save(mlp.state_dict(), os.path.join(HERE, "mlp.pt"))
expected["mlp"] = {k: flat(v) for k, v in mlp.state_dict().items()}

# A Lightning checkpoint, as Trainer.save_checkpoint writes it (lightning itself is not packaged for Debian, so the dict is
# built here with the same keys; hyper_parameters is pickled as Lightning's AttributeDict class).
data_mod = types.ModuleType("lightning.fabric.utilities.data")
class AttributeDict(dict):
    pass
AttributeDict.__module__ = "lightning.fabric.utilities.data"
data_mod.AttributeDict = AttributeDict
for name in ["lightning", "lightning.fabric", "lightning.fabric.utilities"]:
    sys.modules.setdefault(name, types.ModuleType(name))
sys.modules["lightning.fabric.utilities.data"] = data_mod


class LitRegressor(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))


model = LitRegressor()
optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=100, gamma=0.5)
epochs, steps_per_epoch = 3, 4
x, y = torch.randn(16, 4), torch.randn(16, 2)
for epoch in range(epochs):
    for b in range(steps_per_epoch):
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(model.encoder(x[b * 4:(b + 1) * 4]), y[b * 4:(b + 1) * 4])
        loss.backward()
        optimizer.step()
    scheduler.step()
global_step = epochs * steps_per_epoch
progress = lambda n: {"ready": n, "started": n, "processed": n, "completed": n}
checkpoint = {
    "epoch": epochs - 1,                         # saved by ModelCheckpoint at the end of the last epoch
    "global_step": global_step,
    "pytorch-lightning_version": "2.6.5",
    "state_dict": model.state_dict(),            # keys: encoder.0.weight, ... (attribute paths of the module)
    "loops": {"fit_loop": {
        "state_dict": {},
        "epoch_progress": {"total": dict(progress(epochs), completed=epochs - 1), "current": dict(progress(epochs), completed=epochs - 1)},
        "epoch_loop.state_dict": {"_batches_that_stepped": global_step},
        "epoch_loop.batch_progress": {"total": progress(global_step), "current": progress(steps_per_epoch), "is_last_batch": True},
    }},
    "callbacks": {"ModelCheckpoint{'monitor': None, 'mode': 'min', 'every_n_train_steps': 0, 'every_n_epochs': 1, 'train_time_interval': None}":
                  {"monitor": None, "best_model_score": None, "best_model_path": "", "dirpath": "checkpoints"}},
    "optimizer_states": [optimizer.state_dict()],
    "lr_schedulers": [scheduler.state_dict()],
    "hparams_name": "kwargs",
    "hyper_parameters": AttributeDict(hidden=3, lr=0.01, name="regressor", betas=(0.9, 0.999)),
}
torch.save(checkpoint, os.path.join(HERE, "lightning.ckpt"))
state = optimizer.state_dict()
expected["lightning"] = {
    "epoch": epochs - 1, "global_step": global_step, "steps_per_epoch": steps_per_epoch, "lr": state["param_groups"][0]["lr"],
    "scheduler_last_epoch": scheduler.last_epoch,
    "state_dict": {k: flat(v) for k, v in model.state_dict().items()},
    "adam_step": [float(state["state"][i]["step"]) for i in range(4)],
    "exp_avg": [flat(state["state"][i]["exp_avg"]) for i in range(4)],
    "exp_avg_sq": [flat(state["state"][i]["exp_avg_sq"]) for i in range(4)],
}

with open(os.path.join(HERE, "expected.json"), "w") as f:
    json.dump(expected, f, indent=1)
    f.write("\n")

# The reverse fixtures: written by Lightning.NET's SaveStateDict (see InteropFixtureTests), read here by PyTorch.
for name in ["saved_by_lightning_net.pt"]:
    path = os.path.join(HERE, name)
    if os.path.exists(path):
        loaded = torch.load(path)
        print(name, {k: (str(v.dtype), list(v.shape)) for k, v in loaded.items()})
for name in sorted(os.listdir(HERE)):
    print(f"{os.path.getsize(os.path.join(HERE, name)):8d}  {name}")
