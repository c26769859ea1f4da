"""The steps every notebook repeats, so that its cells stay one line each: build the config
from the notebook's parameters, load the teacher (or say to run 01 first), and train a
method over seeds, keeping each run's record and checkpoint."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from . import results
from .data import Splits
from .methods import get as get_method
from .models import build
from .train import Config, Run, fit, load_checkpoint, save_checkpoint, teacher_targets

TEACHER_FILE = "teacher.pt"


def config(params: dict, **overrides) -> Config:
    """A `Config` from a notebook's parameters: every name that is a Config field is used."""
    names = {f.name for f in fields(Config)}
    return Config(**{**{k: v for k, v in params.items() if k in names}, **overrides})


def teacher_path(checkpoint_dir) -> Path:
    return Path(checkpoint_dir) / TEACHER_FILE


def load_teacher(checkpoint_dir, splits: Splits):
    """The teacher trained by 01_teacher.ipynb on the same data, or a clear error saying so."""
    teacher = load_checkpoint(
        teacher_path(checkpoint_dir), architecture="DeepNN", num_classes=splits.num_classes,
        hint="Run notebooks/01_teacher.ipynb first (with the same data and checkpoint_dir), "
             "or `python -m kdlib.series`, which runs the notebooks in order.")
    trained_on = teacher.checkpoint_meta.get("source")
    if trained_on and trained_on != splits.source:
        raise ValueError(f"The teacher in {teacher_path(checkpoint_dir)} was trained on "
                         f"{trained_on!r}, but this notebook loads {splits.source!r}. Use the "
                         "same `data` as 01_teacher.ipynb, or retrain the teacher.")
    return teacher.eval()


def train_method(method: str, splits: Splits, cfg: Config, seeds, teacher=None,
                 results_dir=None, checkpoint_dir=None) -> list[Run]:
    """Train a fresh LightNN with `method` once per seed; save records and checkpoints.

    The teacher's targets are computed once (or read from the cache) and shared by all seeds.
    """
    targets = None
    needs = get_method(method).needs
    if needs and (cfg.views > 0 or not cfg.augment):
        targets = teacher_targets(teacher, splits, cfg)
    runs = []
    for seed in seeds:
        seeded = Config(**{**vars(cfg), "seed": seed})
        student = build("LightNN", splits.num_classes, seed=seed)
        run = fit(student, splits, method, teacher=teacher, cfg=seeded, targets=targets)
        print(f"{method} seed {seed}: test accuracy {100 * run.accuracy:.2f}% "
              f"({run.seconds:.0f} s, {run.device})")
        if results_dir is not None:
            results.save(results.record(run), results_dir)
        if checkpoint_dir is not None:
            save_checkpoint(run.model, Path(checkpoint_dir) / f"student-{method}-seed{seed}.pt",
                            source=splits.source, method=method, seed=seed)
        runs.append(run)
    return runs


def load_student(checkpoint_dir, method: str, seed: int, splits: Splits):
    return load_checkpoint(Path(checkpoint_dir) / f"student-{method}-seed{seed}.pt",
                           architecture="LightNN", num_classes=splits.num_classes,
                           hint=f"Run the notebook that trains the {method!r} student first.").eval()
