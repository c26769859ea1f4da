"""Benchmark: the official tutorial's pipeline against kdlib's engine, same machine, same images.

    python -m kdlib.bench [--data SOURCE] [--subset N] [--only kdlib|tutorial] [--teacher CKPT]
                          [--workloads ...] [--amp auto|bf16|off] [--device D] [--together N]

(a) tutorial: a torchvision dataset with ToTensor + Normalize through a DataLoader (batch 128,
    2 workers), NCHW float32 (its own copy of the teacher too), the teacher run forward at
    every distillation step. The official tutorial has CE and KD only; for "act AT" and
    "grad AT", (a) is the same pipeline with kdlib's attention loss, the teacher's maps
    computed live at every step (forward, and backward for gradient maps).
(b) kdlib: `kdlib.fit` as the notebooks use it: uint8 tensors on the device, channels_last,
    the teacher's targets computed once per image and gathered by index (no augmentation
    here, as in the tutorial, so both sides train on the same images). With --together N the
    student rows train N seeds at once as one stacked network (`kdlib.fit_together`), and (b)
    is the time per seed: the group's epoch divided by N.

One epoch per workload and side; prints seconds per epoch, images/s, peak memory and the test
accuracy each reaches after that epoch, and two speed-ups (a)/(b): per epoch, and per whole
one-epoch recipe, where (b) also pays for the teacher targets that workload needs (computed
once per teacher; a longer recipe spreads them over its epochs). The students distil from the
teacher that the "teacher CE" row trains (or from --teacher).
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from . import data as kdata
from .files import write_text
from .losses import activation_attention, attention_loss, gradient_attention, kd_loss
from .methods import METHODS
from .models import build, forward_features
from .checkpoints import load_checkpoint
from .config import Config, describe_cpu, resolve_device
from .targets import teacher_targets
from .train import fit_together

WORKLOADS = ["teacher CE", "student CE", "student KD", "student act AT", "student grad AT"]
METHOD_OF = {"teacher CE": "ce", "student CE": "ce", "student KD": "kd",
             "student act AT": "act_at", "student grad AT": "grad_at"}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def tutorial_epoch(workload: str, splits: kdata.Splits, teacher, device, cfg: Config):
    """One epoch the tutorial's way; returns (seconds, test accuracy, model)."""
    from torch.utils.data import DataLoader, TensorDataset
    from torchvision import transforms

    to_tensor = transforms.Compose([transforms.ToTensor(), transforms.Normalize(splits.mean, splits.std)])

    class Images(torch.utils.data.Dataset):
        # Per-image PIL -> ToTensor -> Normalize, as a torchvision dataset does with transforms.
        def __init__(self, x, y):
            self.x, self.y = x.permute(0, 2, 3, 1).numpy(), y
        def __len__(self):
            return len(self.y)
        def __getitem__(self, i):
            from PIL import Image
            return to_tensor(Image.fromarray(self.x[i])), int(self.y[i])

    train_loader = DataLoader(Images(splits.x_train, splits.y_train), batch_size=128, shuffle=True,
                              num_workers=2, persistent_workers=False)
    torch.manual_seed(0)
    model = build("DeepNN" if workload.startswith("teacher") else "LightNN", splits.num_classes).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    method = METHOD_OF[workload]
    if teacher is not None:  # a copy in NCHW: kdlib's fit converts its models to channels_last
        teacher = copy.deepcopy(teacher).to(device, memory_format=torch.contiguous_format).eval()
    start = time.perf_counter()
    model.train()
    for x, y in train_loader:
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        if method == "ce":
            loss = F.cross_entropy(model(x), y)
        elif method == "kd":
            with torch.no_grad():
                t = teacher(x)
            s = model(x)
            loss = (1 - cfg.kd_weight) * F.cross_entropy(s, y) + cfg.kd_weight * kd_loss(s, t, cfg.temperature)
        else:
            if method == "act_at":
                with torch.no_grad():
                    _, t_stages = forward_features(teacher, x)
                t_maps = [activation_attention(f) for f in t_stages]
                logits, stages = forward_features(model, x)
                s_maps = [activation_attention(f) for f in stages]
            else:
                xt = x.clone().requires_grad_(True)
                t_logits, t_stages = forward_features(teacher, xt)
                t_maps = [m.detach() for m in gradient_attention(t_logits, y, t_stages)]
                logits, stages = forward_features(model, x)
                s_maps = gradient_attention(logits, y, stages, create_graph=True)
            loss = F.cross_entropy(logits, y) + cfg.beta * sum(attention_loss(s, t) for s, t in zip(s_maps, t_maps))
        loss.backward()
        optimizer.step()
    seconds = time.perf_counter() - start
    model.eval()
    test_loader = DataLoader(TensorDataset(kdata.normalize(splits.x_test, splits.mean, splits.std, channels_last=False),
                                           splits.y_test), batch_size=1000)
    with torch.no_grad():
        correct = sum(int((model(x.to(device)).argmax(1).cpu() == y).sum()) for x, y in test_loader)
    return seconds, correct / len(splits.y_test), model


def kdlib_epoch(workload: str, splits: kdata.Splits, teacher, cfg: Config, targets, together: int = 1):
    """One epoch through `kdlib.fit_together` (one model, or `together` student seeds at once);
    returns (seconds per model, mean test accuracy, the first model)."""
    size = 1 if workload.startswith("teacher") else together
    models = [build("DeepNN" if workload.startswith("teacher") else "LightNN", splits.num_classes, seed=s)
              for s in range(size)]
    runs = fit_together(models, splits, METHOD_OF[workload], None if workload.endswith("CE") else teacher,
                        cfg, list(range(size)), targets)
    return runs[0].history[0]["seconds"], sum(r.accuracy for r in runs) / size, runs[0].model


def machine() -> str:
    return torch.cuda.get_device_name() if torch.cuda.is_available() else describe_cpu()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kdlib.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="cifar10", help="data source, as everywhere (default: cifar10)")
    parser.add_argument("--subset", type=int, help="use only N training images (a fixed random sample)")
    parser.add_argument("--only", choices=["kdlib", "tutorial"], help="time one side only")
    parser.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=WORKLOADS)
    parser.add_argument("--teacher", help="a DeepNN checkpoint to distil from (default: the teacher "
                                          "trained by the 'teacher CE' row, or an untrained one)")
    parser.add_argument("--amp", default="auto", choices=["auto", "bf16", "off"],
                        help="kdlib side: bf16 autocast (auto: where the hardware runs it fast, kdlib.config.native_bf16)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, help="also write the seconds per workload there (kdlib.gpujob reads them)")
    parser.add_argument("--together", type=int, default=1, metavar="N",
                        help="kdlib side: train N student seeds at once, report seconds per seed")
    args = parser.parse_args(argv)
    if args.subset is not None and args.subset < 1:
        parser.error(f"--subset {args.subset}: expected a number of training images >= 1")
    if args.together < 1:
        parser.error(f"--together {args.together}: expected a number of seeds of at least 1")

    device = resolve_device(args.device)
    splits = kdata.load(args.data, n_train=args.subset)
    print(f"bench {time.strftime('%Y-%m-%d')}: {machine()}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; device {device}, amp {args.amp}"
          + (f"; students {args.together} seeds together, (b) per seed" if args.together > 1 else "")
          + f"\n{splits}")
    # One epoch, no augmentation, constant lr: the tutorial's recipe on both sides.
    cfg = Config(epochs=1, augment=False, views=1, schedule="constant", lr=1e-3, temperature=2.0,
                 kd_weight=0.25, device=args.device, amp=args.amp, progress=False)
    if args.teacher:
        teacher = load_checkpoint(args.teacher, "DeepNN", splits.num_classes)
    else:  # replaced by the teacher the "teacher CE" row trains, when it runs
        teacher = build("DeepNN", splits.num_classes, seed=1)
    n = len(splits.y_train)
    rows = ["| workload | (a) tutorial s | (b) kdlib s | (b) targets s | (a) img/s | (b) img/s "
            "| speed-up per epoch | per recipe | (a) acc | (b) acc | peak RSS MiB |", "|---" * 11 + "|"]
    print("\n".join(rows), flush=True)
    nan = (float("nan"), float("nan"), None)
    measured = {}
    for workload in args.workloads:
        needs = METHODS[METHOD_OF[workload]].needs if not workload.startswith("teacher") else ()
        targets, targets_seconds = None, 0.0
        if needs and args.only != "tutorial":
            start = time.perf_counter()  # only the targets this workload needs, as fit would
            targets = teacher_targets(teacher, splits, cfg, cache=False, needs=needs)
            targets_seconds = time.perf_counter() - start
        a = tutorial_epoch(workload, splits, teacher, device, cfg) if args.only != "kdlib" else nan
        b = kdlib_epoch(workload, splits, teacher, cfg, targets, args.together) if args.only != "tutorial" else nan
        if workload == "teacher CE" and not args.teacher:
            teacher = (b[2] if b[2] is not None else a[2]).eval()  # students distil from this teacher
        measured[workload] = {"tutorial_s": a[0], "kdlib_s": b[0], "targets_s": targets_seconds, "images": n}
        mem = f"{peak_rss_mib():.0f}"
        if device.type == "cuda":
            mem += f" (GPU {torch.cuda.max_memory_allocated() / 2**20:.0f})"
        cells = [f"{a[0]:.1f}", f"{b[0]:.1f}", f"{targets_seconds:.1f}", f"{n / a[0]:.0f}", f"{n / b[0]:.0f}",
                 f"{a[0] / b[0]:.1f}x", f"{a[0] / (b[0] + targets_seconds):.1f}x",
                 f"{100 * a[1]:.1f}%", f"{100 * b[1]:.1f}%"]
        cells = ["-" if "nan" in c else c for c in cells]  # the side --only left out
        rows.append(f"| {workload} | {' | '.join(cells)} | {mem} |")
        print(rows[-1], flush=True)
    if args.json:
        write_text(args.json, json.dumps({"device": str(device), "together": args.together, "workloads": measured},
                                         indent=1, default=float))
    if "student CE" in measured and "student KD" in measured and args.only != "tutorial":
        kd, ce = measured["student KD"]["kdlib_s"], measured["student CE"]["kdlib_s"]
        print(f"kdlib: a KD epoch costs {kd / ce:.2f}x a CE epoch "
              "(the teacher targets aside)")


if __name__ == "__main__":
    from .checks import command
    command("python -m kdlib.bench", main)
