"""The teacher published with the repository, in `weights/`: written in float16 from a run's
trained teacher, and loaded, checked against the data it meets, instead of training one.

    python -m kdlib.published RUN_DIR [--data SOURCE]    # RUN_DIR's teacher -> weights/

Why: a strong teacher costs a GPU or hours of CPU; published, a CPU user runs every student
notebook against it in minutes (01_teacher's `teacher_weights` parameter). Float16 halves the
file (a DeepNN: 2.4 MB); `write_teacher` measures the test accuracy of the float16 weights
themselves, and that is the accuracy written beside them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import data, results
from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint
from .config import Config
from .files import load_tensors, write_text
from .models import teacher_architecture

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
MAX_MB = 6.0  # what the repository keeps in git


def path(family: str = "tutorial") -> Path:
    """Where the published teacher of a model family lives."""
    return WEIGHTS_DIR / f"teacher-{family}.pt"


def write_teacher(checkpoint, record: dict, splits: data.Splits, out: Path | None = None,
                  command: str = "", machine: str = "") -> Path:
    """Write the trained teacher at `checkpoint` (with its `record` from the run) to `out`
    in float16, with the test accuracy of those float16 weights on `splits`, the data and
    recipe it was trained with, the `command` that trained it and the `machine` it ran on (the
record knows only "CPU (2 cores)"); and a Markdown note beside it."""
    from .evaluation import evaluate  # needed here only, not to load a teacher

    family = record["config"].get("family", "tutorial")
    out = Path(out or path(family))
    teacher = load_checkpoint(checkpoint, architecture=teacher_architecture(family),
                              num_classes=splits.num_classes)
    float32 = record.get("metrics", {}).get("accuracy")
    if float32 is None:  # a snapshot: measured here
        float32 = evaluate(teacher.eval(), splits, cfg=Config(amp="off", progress=False))["accuracy"]
    stored = _half(teacher)
    metrics = evaluate(stored, splits, cfg=Config(amp="off", progress=False))  # float32 arithmetic: the same figure on any CPU
    meta = {"published": True, "accuracy": metrics["accuracy"], "accuracy_float32": float32,
            "snapshot_epoch": record.get("snapshot_epoch"),
            "classes": list(splits.classes), "mean": list(splits.mean), "std": list(splits.std),
            "trained_on": {k: record.get(k) for k in ("source", "data", "n_train", "n_test")},
            # which of the source's training images it saw (None: all of them, as before records kept it)
            "images": record.get("images"),
            "measured_on": {"source": splits.source, "data": splits.fingerprint, "n_test": len(splits.y_test)},
            "config": record["config"], "history": record["history"], "device": record["device"],
            "seconds": record["seconds"], "time": record.get("time"), "code": record.get("code"),
            "command": command, "machine": machine or record["device"]}
    save_checkpoint(stored.half(), out, **meta)
    size = out.stat().st_size / 1e6  # MB, as the notes say
    if size > MAX_MB:
        out.unlink()
        raise ValueError(f"{out}: {size:.1f} MB is over the {MAX_MB} MB the repository keeps; not published.")
    write_text(out.with_suffix(".md"), _note(out, meta, size))
    return out


def _half(model):
    """The model with its weights rounded to float16 and back: what the published file holds."""
    return model.half().float().eval()


def _note(out: Path, meta: dict, size: float) -> str:
    cfg, trained = meta["config"], meta["trained_on"]
    return (f"# {out.name}\n\nThe published {teacher_architecture(cfg.get('family', 'tutorial'))} teacher, "
            f"float16, {size:.1f} MB.\n\n"
            f"- test accuracy of these float16 weights: **{100 * meta['accuracy']:.2f}%** on "
            f"{meta['measured_on']['n_test']:,} test images of {meta['measured_on']['source']}; "
            f"as measured after training, in the run's own precision: {100 * meta['accuracy_float32']:.2f}%\n"
            f"- trained on {trained['n_train']:,} images of {trained['source']} "
            f"(data fingerprint {trained['data']}), "
            + (f"the snapshot after epoch {meta['snapshot_epoch']} of " if meta.get("snapshot_epoch") else "")
            + f"{cfg['epochs']} epochs, lr {cfg['lr']}, "
            f"{cfg['schedule']}, weight decay {cfg['weight_decay']}, augment {cfg['augment']}, "
            f"views {cfg['views']}, batch {cfg['batch_size']}, seed {cfg['seed']}\n"
            f"- on {meta.get('machine') or meta['device']}, {meta['seconds']:.0f} s of training, finished {meta['time']}, "
            f"code {meta['code']}\n"
            f"- command: `{meta['command']}`\n\n"
            "Loaded by `notebooks/01_teacher.ipynb` with `teacher_weights` set to this file; "
            "`tests/test_published.py` measures its accuracy again where the real data is present.\n")


def load(weights, splits: data.Splits, family: str = "tutorial"):
    """The published teacher at `weights` as a float32 model in eval mode, with its stored
    fields (`checkpoint_meta`). A clear error when it is not a published teacher of `family`
    for this data's classes and normalization."""
    weights = Path(weights)
    hint = ("Set teacher_weights = None to train the teacher in 01_teacher.ipynb, or point it to "
            f"a published teacher (weights/teacher-{family}.pt, written by python -m kdlib.published).")
    teacher = load_checkpoint(weights, architecture=teacher_architecture(family), num_classes=splits.num_classes,
                              hint=hint).float().eval()
    meta = teacher.checkpoint_meta
    if not meta.get("published"):
        raise CheckpointError(f"{weights} is a checkpoint but not a published teacher (no accuracy, data "
                              f"or recipe stored with it). {hint}")
    if meta["classes"] != list(splits.classes):
        raise CheckpointError(f"{weights} was trained on the classes {meta['classes']}, but this data has "
                              f"{list(splits.classes)}. It can only teach on the same classes. {hint}")
    try:
        splits.check_unseen(meta.get("images"), f"The published teacher {weights.name}")
    except data.DataError as error:
        raise CheckpointError(str(error)) from None
    if any(abs(a - b) > 0.01 for a, b in zip(meta["mean"] + meta["std"], list(splits.mean) + list(splits.std))):
        raise CheckpointError(
            f"{weights} expects images normalized with mean {_rounded(meta['mean'])}, std {_rounded(meta['std'])}; "
            f"this data is normalized with mean {_rounded(splits.mean)}, std {_rounded(splits.std)}. Load the data "
            "with the published teacher's `normalization`, or train the teacher. " + hint)
    return teacher


def _rounded(values) -> list[float]:
    return [round(float(v), 3) for v in values]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m kdlib.published", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a finished run (its checkpoints/teacher.pt and teacher record)")
    parser.add_argument("--data", default=None, help="the data to measure it on (default: what it was trained on)")
    parser.add_argument("--normalization", default="data", choices=["data", "imagenet"],
                        help="as the run's (the reference profile uses imagenet)")
    parser.add_argument("--out", type=Path, help="default: weights/teacher-FAMILY.pt")
    parser.add_argument("--command", default="", help="the command that trained it, written beside it")
    parser.add_argument("--machine", default="", help="the machine it trained on, e.g. the CPU model and cores")
    parser.add_argument("--n-val", type=int, default=None,
                        help="the validation split it was trained without (default: its record's n_val); its "
                             "normalization statistics are those of the images outside it")
    parser.add_argument("--snapshot", type=int, metavar="EPOCH",
                        help="publish the snapshot kept after EPOCH (checkpoints/teacher-epochNNN.pt) instead")
    args = parser.parse_args(argv)
    if not args.run_dir.is_dir():
        parser.error(f"{args.run_dir}: no such run folder (give the folder of a run whose 01_teacher.ipynb finished)")
    records = [r for r in results.load(args.run_dir / "results") if r["method"] == "teacher"]
    if not records:
        raise SystemExit(f"kdlib.published: {args.run_dir / 'results'} holds no teacher record: "
                         "give the folder of a run whose 01_teacher.ipynb finished.")
    record = records[-1]
    checkpoint = args.run_dir / "checkpoints" / "teacher.pt"
    if args.snapshot is not None:
        checkpoint = checkpoint.with_name(f"teacher-epoch{args.snapshot:03d}.pt")
        if not checkpoint.is_file():
            kept = sorted(int(p.stem[len("teacher-epoch"):]) for p in checkpoint.parent.glob("teacher-epoch*.pt"))
            raise SystemExit(f"kdlib.published: no snapshot after epoch {args.snapshot} in {checkpoint.parent}; "
                             f"this run kept {kept or 'none'} (01's teacher_snapshots).")
        history = load_tensors(checkpoint)["meta"]["history"]
        record = {**record, "history": history, "seconds": sum(row["seconds"] for row in history), "metrics": {},
                  "snapshot_epoch": args.snapshot}
    splits = data.load(args.data or record["source"], n_test=record.get("n_test"),
                       n_val=args.n_val if args.n_val is not None else record.get("n_val") or None,
                       normalization=args.normalization)
    splits.check_unseen(record.get("images"), f"The teacher of {args.run_dir}")  # the split it was trained without
    out = write_teacher(checkpoint, record, splits, args.out, args.command, args.machine)
    print(json.dumps({"written": str(out), "family": record["config"].get("family", "tutorial"),
                      "accuracy": load_tensors(out)["meta"]["accuracy"]}))


if __name__ == "__main__":
    from .checks import command
    sys.exit(command("python -m kdlib.published", main))
