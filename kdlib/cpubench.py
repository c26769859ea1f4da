"""The course's workloads on this CPU, against what this CPU can do.

    python -m kdlib.cpubench [--data SOURCE] [--images 5000] [--epochs 2] [--amp auto|bf16|off] [--json FILE]

For each workload of a course run (a CE, KD, gradient-attention and cosine student epoch; a
teacher's CE epoch, 01's when it trains one; the teacher's targets for every view; a student's
evaluation and its map similarity) it prints
seconds and images per second with one thread and with every core, and for the student step
the share of the CPU's measured peak: a matmul in the run's precision (bf16 autocast where the
CPU has it natively, else float32), FLOPs of one step counted by torch's FlopCounterMode. Then
two CE runs side by side, one thread each (what `workers = "auto"` does), against one run on
every core: whether the second core pays more as a second run than as a second thread.

Every figure names the CPU (model, cores, vector instructions) and the precision: timings
move several times between CPUs (an AVX2-only CPU in float32 took 2.6x as long per course run
as an AVX-512 one with bf16), and a benchmark beside another heavy process measures nothing.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

from . import data
from .config import Config, autocast, describe_cpu, precision
from .evaluation import evaluate, map_similarity
from .files import write_text
from .methods import apply, get as get_method
from .models import build, hint_stage
from .targets import distillation_targets, teacher_targets
from .train import fit

# Training workloads: (the architecture trained, its method).
TRAINING_WORKLOADS = {"student CE": ("LightNN", "ce"), "student KD": ("LightNN", "kd"),
                      "student grad AT": ("LightNN", "grad_at"), "student cosine": ("LightNN", "cosine"),
                      "teacher CE": ("DeepNN", "ce")}
# Environment variables that cap the vector instructions PyTorch's kernels and oneDNN use: how a
# faster CPU stands in for an AVX2-only laptop (ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2).
ISA_LIMITS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")


def isa_cap(environ=os.environ) -> str | None:
    """The cap those variables set at AVX2 or below, as "NAME=value, ..."; None where none does.
    The engine reads /proc/cpuinfo, which a cap does not change, so under a cap `amp = "auto"`
    would pick an emulated bf16: the bench asks for float32 itself, a series is warned."""
    aten, onednn = environ.get("ATEN_CPU_CAPABILITY", "").lower(), environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if aten in ("default", "avx2") or onednn.startswith(("SSE", "AVX2")) or onednn == "AVX":
        return ", ".join(f"{name}={environ[name]}" for name in ISA_LIMITS if environ.get(name))
    return None


def machine(environ=os.environ) -> str:
    """The CPU as every timing names it, with the cap where one is set."""
    cap = isa_cap(environ)
    return describe_cpu() + (f", held at AVX2 by {cap}" if cap else "")


def peak_gflops(threads: int, amp: str, size: int = 1024, repeats: int = 20, trials: int = 3) -> float:
    """GFLOP/s of a square matmul in the run's precision with `threads` threads: what this CPU can do.

    The best of `trials` timings: a shared or frequency-ramping CPU only ever makes a timing
    slower, and an underestimated peak would put a training step above 100% of it."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    best = float("inf")
    with autocast(torch.device("cpu"), amp):
        a @ b  # warm-up
        for _ in range(trials):
            started = time.perf_counter()
            for _ in range(repeats):
                a @ b
            best = min(best, time.perf_counter() - started)
    return 2 * size ** 3 * repeats / best / 1e9


def step_flops(architecture: str, method: str, cfg: Config, splits: data.Splits, teacher) -> float:
    """FLOPs of one training step of `architecture` on one batch (forward, loss, backward), counted."""
    from torch.utils.flop_counter import FlopCounterMode
    student = build(architecture, splits.num_classes, seed=0)
    x = data.normalize(splits.x_train[:cfg.batch_size], splits.mean, splits.std)
    y = splits.y_train[:cfg.batch_size]
    recipe = get_method(method)
    targets = distillation_targets(teacher, x, y, recipe.needs, hint_stage(cfg.family)) if recipe.needs else {}
    head = recipe.head
    with FlopCounterMode(display=False) as counter:
        _, terms = apply(method, student, x, y, targets, cfg, head=head(cfg, 0) if head else None)
        sum(terms.values()).backward()
    return counter.get_total_flops()


def _side_by_side_run(args) -> float:
    """One CE run of one thread in its own process: its last epoch's seconds."""
    source, images, cfg = args
    torch.set_num_threads(1)
    splits = data.load(source, n_train=images, n_val=5000 if source != "synthetic" else 100)
    run = fit(build("LightNN", splits.num_classes, seed=0), splits, "ce", cfg=cfg)
    return run.history[-1]["seconds"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kdlib.cpubench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="cifar10")
    parser.add_argument("--images", type=int, default=5000, help="training images (the course: 5,000)")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per student workload; the last one is timed")
    parser.add_argument("--amp", choices=["auto", "bf16", "off"], default=None,
                        help="the precision (default: what the engine's auto picks; float32 under an AVX2 cap): "
                             "bf16 and off side by side say whether bf16 pays on this CPU")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    for flag, value in (("--images", args.images), ("--epochs", args.epochs)):
        if value < 1:
            parser.error(f"{flag} {value}: expected an integer >= 1")
    cores = os.cpu_count() or 1
    cfg = Config(epochs=args.epochs, weight_decay=5e-4, progress=False, workers=1,  # the course's recipe
                 amp=args.amp or ("off" if isa_cap() else "auto"))
    amp = precision(torch.device("cpu"), cfg.amp)
    splits = data.load(args.data, n_train=args.images, n_val=5000 if args.data != "synthetic" else 100)
    print(f"cpubench {time.strftime('%Y-%m-%d')}: {machine()}; torch {torch.__version__}; precision {amp}\n{splits}")
    teacher = build("DeepNN", splits.num_classes, seed=1).eval()  # speed does not depend on its weights
    thread_counts = sorted({1, cores})
    peaks = {t: peak_gflops(t, amp) for t in thread_counts}
    print("matmul peak, GFLOP/s: " + ", ".join(f"{t} thread(s) {p:.0f}" for t, p in peaks.items()))
    n = len(splits.y_train)
    rows = {}
    header = "| workload | " + " | ".join(f"{t} thread(s): s | img/s | % of peak" for t in thread_counts) + " |"
    print(header + "\n" + "|---" * (1 + 3 * len(thread_counts)) + "|", flush=True)
    for name, (architecture, method) in TRAINING_WORKLOADS.items():
        flops = step_flops(architecture, method, replace(cfg, amp="off"), splits, teacher) / cfg.batch_size  # per image
        if method != "ce":
            teacher_targets(teacher, splits, cfg, needs=get_method(method).needs)  # computed before the clock starts
        rows[name] = {}
        for t in thread_counts:
            torch.set_num_threads(t)
            # the teacher: one epoch (its clock starts warm enough); a student: the last of cfg.epochs
            run = fit(build(architecture, splits.num_classes, seed=0), splits, method, teacher,
                      replace(cfg, epochs=1) if architecture == "DeepNN" else cfg)
            seconds = run.history[-1]["seconds"]
            rows[name][t] = {"seconds": seconds, "images_per_s": n / seconds, "gflop_per_image": flops / 1e9,
                             "peak_share": flops * n / seconds / 1e9 / peaks[t]}
        print(f"| {name} | " + " | ".join(f"{r['seconds']:.2f} | {r['images_per_s']:.0f} | {100 * r['peak_share']:.0f}%"
                                          for r in rows[name].values()) + " |", flush=True)
    student = build("LightNN", splits.num_classes, seed=0).eval()
    for name, work in (("teacher targets (8 views)", lambda: teacher_targets(teacher, splits, cfg, cache=False)),
                       ("evaluation (test set)", lambda: evaluate(student, splits, teacher=teacher, cfg=cfg, detailed=False)),
                       ("map similarity", lambda: map_similarity(student, teacher, splits, cfg))):
        rows[name] = {}
        for t in thread_counts:
            torch.set_num_threads(t)
            started = time.perf_counter()
            work()
            rows[name][t] = {"seconds": time.perf_counter() - started}
        print(f"| {name} | " + " | ".join(f"{r['seconds']:.2f} | | " for r in rows[name].values()) + " |", flush=True)
    torch.set_num_threads(cores)
    side = {}
    if cores > 1:
        with multiprocessing.get_context("spawn").Pool(cores) as pool:
            started = time.perf_counter()
            epoch_seconds = pool.map(_side_by_side_run, [(args.data, args.images, cfg)] * cores)
            wall = time.perf_counter() - started
        one = rows["student CE"][cores]["seconds"]
        side = {"runs": cores, "epoch_seconds": epoch_seconds, "wall": wall,
                "throughput_gain": cores * one / max(epoch_seconds)}
        print(f"{cores} CE runs side by side, one thread each: {', '.join(f'{s:.2f}' for s in epoch_seconds)} s per "
              f"epoch, against {one:.2f} s for one run on {cores} threads: {side['throughput_gain']:.2f}x the "
              "images per second of the machine")
    if args.json:
        write_text(args.json, json.dumps({"cpu": machine(), "precision": amp, "peaks": peaks, "workloads": rows,
                                          "side_by_side": side, "images": n, "torch": torch.__version__}, indent=1))


if __name__ == "__main__":
    from .checks import command
    sys.exit(command("python -m kdlib.cpubench", main))
