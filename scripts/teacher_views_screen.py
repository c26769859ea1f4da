"""What training the teacher on fresh views (a new crop and flip at every step) instead of the
students' fixed view table does, at a reduced CPU scale: the teacher's accuracy, and KD's
paired gain over CE when students distil from it (same seeds, same fixed views for them).

    python scripts/teacher_views_screen.py DATA [--n-train 10000] [--teacher-epochs 10]
                                                [--student-epochs 60] [--seeds 0 1 2] [--out runs/teacher-views]

Teachers: DeepNN on a fixed n_train training images (5,000 others held out for validation),
Adam one-cycle 2e-3, weight decay 5e-4, either 8 fixed views (what the engine did before) or
fresh views (what `experiment.train_teacher` does now). Students: LightNN on the course's
5,000 of those images, CE (once: it does not read the teacher) and KD from each teacher (T = 4,
weight 0.5), the course's recipe.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import kdlib
from kdlib import experiment


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data")
    parser.add_argument("--n-train", type=int, default=10000)
    parser.add_argument("--teacher-epochs", type=int, default=10)
    parser.add_argument("--student-epochs", type=int, default=60)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", type=Path, default=Path("runs/teacher-views"))
    args = parser.parse_args(argv)

    splits = kdlib.load(args.data, n_train=args.n_train, n_val=5000)
    students = kdlib.load(args.data, n_train=5000, n_val=5000)  # the course's images, a subset of those above
    base = kdlib.Config(weight_decay=5e-4, progress=False, eval_every=5)
    lines = []
    # CE does not read the teacher: one set of CE students is the baseline of both teachers
    ce = experiment.train_method("ce", students, replace(base, epochs=args.student_epochs), args.seeds,
                                 None, args.out / "ce" / "results", args.out / "ce" / "checkpoints", reuse=True)
    ce_acc = [(100 * r.metrics["val_accuracy"], 100 * r.accuracy) for r in ce]
    for name, views in (("fixed", 8), ("fresh", 0)):
        folder = args.out / name
        path = folder / "teacher.pt"
        if path.is_file():
            teacher = kdlib.load_checkpoint(path, "DeepNN", splits.num_classes).eval()
        else:  # fit directly: train_teacher would put the teacher on fresh views whatever `views` says
            run = kdlib.fit(kdlib.build("DeepNN", splits.num_classes, seed=0), splits, "ce",
                            cfg=replace(base, epochs=args.teacher_epochs, views=views), label=f"teacher ({name} views)")
            kdlib.save_checkpoint(run.model, path, seconds=run.seconds)
            teacher = run.model.eval()
        teacher_acc = 100 * kdlib.evaluate(teacher, splits, detailed=False)["accuracy"]
        kd = experiment.train_method("kd", students, replace(base, epochs=args.student_epochs), args.seeds,
                                     teacher, folder / "results", folder / "checkpoints", reuse=True)
        gains = [(100 * k.metrics["val_accuracy"] - c[0], 100 * k.accuracy - c[1]) for k, c in zip(kd, ce_acc)]
        line = (f"teacher on {name} views: test {teacher_acc:.2f}%; KD - CE by seed, validation "
                f"{', '.join(f'{g[0]:+.2f}' for g in gains)} (mean {sum(g[0] for g in gains) / len(gains):+.2f}); "
                f"test {', '.join(f'{g[1]:+.2f}' for g in gains)} (mean {sum(g[1] for g in gains) / len(gains):+.2f})")
        lines.append(line)
        print(line, flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(kdlib.checks.command("scripts/teacher_views_screen.py", main))
