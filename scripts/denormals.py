"""How much float32 subnormals cost a course run on this CPU: one CE student (the course's
5,000 images, recipe and 60 epochs, one thread) trained with subnormals flushed to zero, as kdlib
does, and once with them kept; seconds per epoch over the run, subnormal weights at its end, and
test accuracy of both.

    python scripts/denormals.py DATA [--epochs 60]

Each arm runs in a process of its own, one after the other: run it on an idle CPU.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

ARM = r"""
import json, sys, torch
import kdlib
from kdlib import config, data, models, train
flush = sys.argv[1] == "flush"
if not flush:
    torch.set_flush_denormal(False)
    train.flush_denormals = lambda: None  # the engine sets it again when training starts
torch.set_num_threads(1)
splits = data.load(sys.argv[2], n_train=5000, n_val=5000)
cfg = config.Config(epochs=int(sys.argv[3]), weight_decay=5e-4, eval_every=5, progress=False, workers=1)
run = train.fit(models.build("LightNN", splits.num_classes, seed=0), splits, "ce", cfg=cfg)
weights = torch.cat([p.detach().flatten().float() for p in run.model.parameters()])
subnormal = int(((weights != 0) & (weights.abs() < torch.finfo(torch.float32).tiny)).sum())
print(json.dumps({"flush": flush, "epoch_seconds": [round(h["seconds"], 2) for h in run.history],
                  "subnormal_weights": subnormal, "weights": weights.numel(),
                  "accuracy": round(100 * kdlib.evaluate(run.model, splits, cfg=cfg)["accuracy"], 2)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()
    from kdlib.config import describe_cpu, precision
    import torch
    print(f"{describe_cpu()}; torch {torch.__version__}; precision {precision(torch.device('cpu'))}")
    for arm in ("flush", "keep"):
        done = subprocess.run([sys.executable, "-c", ARM, arm, args.data, str(args.epochs)],
                              capture_output=True, text=True)
        if done.returncode != 0:  # its last lines name the problem (a data source, say)
            said = "\n".join(done.stderr.strip().splitlines()[-15:]) or "(nothing on stderr: killed?)"
            raise SystemExit(f"scripts/denormals.py: the {arm} arm failed (exit {done.returncode}):\n{said}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        seconds = result["epoch_seconds"]
        tenth = max(1, len(seconds) // 10)
        print(f"subnormals {'flushed' if result['flush'] else 'kept':7}: {sum(seconds):6.1f} s in all, "
              f"first tenth {sum(seconds[:tenth]) / tenth:.2f} s/epoch, last tenth {sum(seconds[-tenth:]) / tenth:.2f}; "
              f"{result['subnormal_weights']:,} of {result['weights']:,} weights subnormal at the end; "
              f"test accuracy {result['accuracy']:.2f}%")


if __name__ == "__main__":
    main()
