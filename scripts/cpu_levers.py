"""CPU levers for the student (docs/speed.md, "CPU levers"): float32 against bf16 autocast, batch size
with a scaled rate, torch.compile, threads; one LightNN, CE, 10,000 images, 3 epochs each.

    python scripts/cpu_levers.py DATA

Prints per setting: the seconds of each epoch, the wall time, the test accuracy (%)."""

import sys
import time

import torch

import kdlib
from kdlib.models import build

splits = kdlib.checks.command("scripts/cpu_levers.py", kdlib.load, sys.argv[1] if len(sys.argv) > 1 else "cifar10",
                               n_train=10000, n_test=2000)



def run(method="ce", **kw):
    cfg = kdlib.Config(epochs=3, progress=False, eval_every=100, views=0, **kw)
    t0 = time.perf_counter()
    r = kdlib.fit(build("LightNN", 10, seed=0), splits, method, None, cfg)
    return [round(h["seconds"], 2) for h in r.history], round(time.perf_counter() - t0, 1), round(100 * r.accuracy, 1)


for name, kw in [("float32", dict(amp="off")), ("bf16", dict(amp="bf16")),
                 ("bf16 batch 256 lr 4e-3", dict(amp="bf16", batch_size=256, lr=4e-3)),
                 ("float32 compile", dict(amp="off", compile=True)), ("bf16 compile", dict(amp="bf16", compile=True))]:
    print(name, *run(**kw), flush=True)
torch.set_num_threads(1); print("bf16 1 thread", *run(amp="bf16"), flush=True)
