"""A reduced-scale screen of distillation recipes on the CPU: which student schedule and KD
setting make distillation pay, chosen on a validation split (the test set chooses nothing).
Not part of the series: a record of how the course's recipe was chosen where no GPU was at hand.

    python scripts/recipe_screen.py DATA [--n-train 10000] [--n-val 5000] [--epochs 30 60]
                                         [--seeds 0 1 2] [--students ce kd_a0.5 kd_a0.9]
                                         [--teacher weights/teacher-tutorial.pt] [--out runs/screen]

Students: LightNN with the course's recipe (Adam one-cycle 2e-3, batch 128, weight decay 5e-4,
8 fixed views, bf16 where the CPU has it), every one with the same seeds, distilling from the
published teacher. Prints each student's validation accuracy by seed, the mean, and the
difference from CE paired by seed with its 95% t-interval; records go to OUT/results.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import kdlib
from kdlib import experiment, published

STUDENTS = {  # name: (method, Config changes)
    "ce": ("ce", {}),
    "ls": ("ls", {}),
    "kd_a0.5": ("kd", {"kd_weight": 0.5}),
    "kd_a0.9": ("kd", {"kd_weight": 0.9}),
    "kd_a0.9_T2": ("kd", {"kd_weight": 0.9, "temperature": 2.0}),
    "kd_a0.9_T8": ("kd", {"kd_weight": 0.9, "temperature": 8.0}),
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("--n-train", type=int, default=10000)
    parser.add_argument("--n-val", type=int, default=5000)
    parser.add_argument("--epochs", type=int, nargs="+", default=[30, 60])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--students", nargs="+", choices=list(STUDENTS), default=["ce", "kd_a0.5", "kd_a0.9"])
    parser.add_argument("--teacher", type=Path, default=published.path("tutorial"))
    parser.add_argument("--out", type=Path, default=Path("runs/screen"))
    args = parser.parse_args(argv)

    splits = kdlib.load(args.data, n_train=args.n_train, n_val=args.n_val)
    teacher = published.load(args.teacher, splits)
    folders = dict(results_dir=args.out / "results", checkpoint_dir=args.out / "checkpoints", reuse=True)
    print(f"{splits}; teacher {args.teacher.name}; seeds {args.seeds}", flush=True)
    for epochs in args.epochs:
        base = kdlib.Config(epochs=epochs, weight_decay=5e-4, progress=False, eval_every=epochs)
        accuracy = {}
        for name in args.students:
            method, changes = STUDENTS[name]
            runs = experiment.train_method(method, splits, replace(base, **changes), args.seeds, teacher,
                                           name=name, tag=f"-e{epochs}", **folders)
            accuracy[name] = [100 * r.metrics["val_accuracy"] for r in runs]
            mean = sum(accuracy[name]) / len(accuracy[name])
            line = (f"n_train {args.n_train}, {epochs} epochs, {name:>10}: validation {mean:.2f} "
                    f"({', '.join(f'{v:.2f}' for v in accuracy[name])})")
            if name != "ce" and "ce" in accuracy:
                diffs = [v - c for v, c in zip(accuracy[name], accuracy["ce"])]
                line += f"  minus CE by seed: {', '.join(f'{d:+.2f}' for d in diffs)}; {_interval(diffs)}"
            print(line, flush=True)


def _interval(diffs: list[float]) -> str:
    """The mean paired difference with its 95% t-interval."""
    from statistics import mean, stdev

    from scipy import stats
    if len(diffs) < 2:
        return f"mean {mean(diffs):+.2f} (one seed: no interval)"
    half = stats.t.ppf(0.975, len(diffs) - 1) * stdev(diffs) / len(diffs) ** 0.5
    return f"mean {mean(diffs):+.2f} [{mean(diffs) - half:+.2f}, {mean(diffs) + half:+.2f}]"


if __name__ == "__main__":
    sys.exit(kdlib.checks.command("scripts/recipe_screen.py", main))
