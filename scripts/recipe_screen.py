"""A reduced-scale screen of distillation recipes on the CPU (issue: a recipe that earns the
table). Not part of the series: a record of what was tried where no GPU was at hand.

    python scripts/recipe_screen.py DATA [--n-train 10000] [--n-test 2000] [--teacher-epochs 20]
                                         [--student-epochs 15] [--seeds 0 1 2] [--out runs/screen]
                                         [--teacher CKPT] [--students NAME ...]

One teacher (DeepNN, Adam one-cycle 2e-3, weight decay 5e-4, crop + flip with 8 fixed views),
then LightNN students, every one with the same recipe and seeds: CE; KD (T = 4) with weight
0.5 and 0.9 from the fixed views' targets; KD with weight 0.9 on fresh views with the teacher
run live ("consistent" teaching, Beyer et al. 2022). Prints the accuracy of each seed, the mean
and the difference from CE paired by seed, and writes every run's record to OUT/results.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import kdlib
from kdlib import experiment

STUDENTS = {  # name: (method, Config changes)
    "ce": ("ce", {}),
    "kd_a0.5": ("kd", {"kd_weight": 0.5}),
    "kd_a0.9": ("kd", {"kd_weight": 0.9}),
    "kd_a0.9_live": ("kd", {"kd_weight": 0.9, "views": 0}),
}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("--n-train", type=int, default=10000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--teacher-epochs", type=int, default=20)
    parser.add_argument("--student-epochs", type=int, default=15)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--students", nargs="+", choices=list(STUDENTS), default=list(STUDENTS))
    parser.add_argument("--out", type=Path, default=Path("runs/screen"))
    parser.add_argument("--teacher", type=Path, help="a trained teacher checkpoint to distil from "
                                                     "(default: train one, or reuse OUT's)")
    args = parser.parse_args(argv)

    splits = kdlib.load(args.data, n_train=args.n_train, n_test=args.n_test)
    folders = dict(results_dir=args.out / "results", checkpoint_dir=args.out / "checkpoints", reuse=True)
    base = kdlib.Config(weight_decay=5e-4, progress=False)
    if args.teacher:
        teacher = kdlib.load_checkpoint(args.teacher, "DeepNN", splits.num_classes).eval()
        print(f"teacher: {args.teacher}, test accuracy {100 * kdlib.evaluate(teacher, splits)['accuracy']:.2f}%")
    else:
        teacher = experiment.train_teacher(splits, replace(base, epochs=args.teacher_epochs), **folders).model
    accuracy = {}
    for name in args.students:
        method, changes = STUDENTS[name]
        cfg = replace(base, epochs=args.student_epochs, **changes)
        runs = experiment.train_method(method, splits, cfg, args.seeds, teacher, name=name, **folders)
        accuracy[name] = [100 * r.accuracy for r in runs]
    print(f"\n{splits}; teacher {args.teacher_epochs} epochs; students {args.student_epochs} epochs; seeds {args.seeds}")
    for name, values in accuracy.items():
        mean = sum(values) / len(values)
        line = f"{name:>14}: {mean:.2f}  ({', '.join(f'{v:.2f}' for v in values)})"
        if name != "ce" and "ce" in accuracy:
            diffs = [v - c for v, c in zip(values, accuracy["ce"])]
            line += f"  minus CE by seed: {', '.join(f'{d:+.2f}' for d in diffs)}; {_interval(diffs)}"
        print(line)


def _interval(diffs: list[float]) -> str:
    """The mean paired difference with its 95% t-interval."""
    from statistics import mean, stdev

    from scipy import stats
    if len(diffs) < 2:
        return f"mean {mean(diffs):+.2f} (one seed: no interval)"
    half = stats.t.ppf(0.975, len(diffs) - 1) * stdev(diffs) / len(diffs) ** 0.5
    return f"mean {mean(diffs):+.2f} [{mean(diffs) - half:+.2f}, {mean(diffs) + half:+.2f}]"


if __name__ == "__main__":
    sys.exit(main())
