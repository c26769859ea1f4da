"""The steps every notebook repeats, so that its cells stay one line each: build the config
from the notebook's parameters, load the teacher (or say to run 01 first), train a method
over seeds keeping each run's record and checkpoint, and sweep one hyperparameter."""

from __future__ import annotations

from dataclasses import asdict, fields, replace
from pathlib import Path

import pandas as pd

from . import results
from .data import Splits
from .methods import get as get_method
from .models import build
from .train import Config, Run, digest, fit, load_checkpoint, save_checkpoint, teacher_targets

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


def train_teacher(splits: Splits, cfg: Config, results_dir=None, checkpoint_dir=None,
                  reuse: bool = False, **meta) -> Run:
    """Train the DeepNN teacher with cross-entropy; save its record (as "teacher") and
    `teacher.pt`, which every student notebook loads. `reuse`: see `train_method`."""
    path = teacher_path(checkpoint_dir) if checkpoint_dir is not None else None
    run = _finished_run("teacher", "DeepNN", splits, cfg, results_dir, path) if reuse else None
    if run is None:
        run = fit(build("DeepNN", splits.num_classes, seed=cfg.seed), splits, "ce", cfg=cfg)
        if path is not None:
            save_checkpoint(run.model, path, source=splits.source, accuracy=run.accuracy,
                            config=_comparable(asdict(cfg)), **_identity(splits), **meta)
        if results_dir is not None:
            results.save(results.record(run, name="teacher", **_identity(splits), **meta), results_dir)
    print(f"teacher: test accuracy {100 * run.accuracy:.2f}% ({run.seconds:.0f} s, {run.device})")
    return run


def train_method(method: str, splits: Splits, cfg: Config, seeds, teacher=None,
                 results_dir=None, checkpoint_dir=None, reuse: bool = False) -> list[Run]:
    """Train a fresh LightNN with `method` once per seed; save records and checkpoints.

    The teacher's targets are computed once (or read from the cache) and shared by all seeds.
    reuse: take a seed's finished run (checkpoint and record with the same config and data)
    instead of training it again, so that an interrupted series resumes where it stopped.
    """
    runs = []
    targets = None
    for seed in seeds:
        seeded = replace(cfg, seed=seed)
        path = Path(checkpoint_dir) / f"student-{method}-seed{seed}.pt" if checkpoint_dir is not None else None
        run = _finished_run(method, "LightNN", splits, seeded, results_dir, path, teacher) if reuse else None
        if run is None:
            if targets is None and get_method(method).needs and cfg.fixed_views:
                targets = teacher_targets(teacher, splits, cfg)
            student = build("LightNN", splits.num_classes, seed=seed)
            run = fit(student, splits, method, teacher=teacher, cfg=seeded, targets=targets)
            # Checkpoint before record: a record with no checkpoint is never taken as finished.
            if path is not None:
                save_checkpoint(run.model, path, source=splits.source, method=method, seed=seed,
                                config=_comparable(asdict(seeded)), **_identity(splits, teacher))
            if results_dir is not None:
                results.save(results.record(run, **_identity(splits, teacher)), results_dir)
        print(f"{method} seed {seed}: test accuracy {100 * run.accuracy:.2f}% "
              f"({run.seconds:.0f} s, {run.device})")
        runs.append(run)
    return runs


def _comparable(config: dict) -> dict:
    """The settings (a Config as a dict) that decide a run's result, not how it is displayed."""
    return {k: v for k, v in config.items() if k != "progress"}


def _identity(splits: Splits, teacher=None) -> dict:
    """What else a run's result depends on: the data size and the teacher's weights."""
    return {"n_train": len(splits.y_train), "n_test": len(splits.y_test),
            "teacher": None if teacher is None else digest(*teacher.state_dict().values())}


def _finished_run(name: str, architecture: str, splits: Splits, cfg: Config, results_dir,
                  path, teacher=None) -> Run | None:
    """The recorded run `name` with exactly these settings, data and teacher, rebuilt from its
    record and checkpoint; None when there is none (then the caller trains)."""
    if results_dir is None or path is None or not Path(path).is_file():
        return None
    wanted = {"config": _comparable(asdict(cfg)), "source": splits.source, **_identity(splits, teacher)}
    model = load_checkpoint(path, architecture, splits.num_classes)
    if any(model.checkpoint_meta.get(k) != v for k, v in wanted.items()):
        return None
    for rec in reversed(results.load(results_dir)):
        found = {"config": _comparable(rec["config"]),
                 "source": rec["source"], **{k: rec.get(k) for k in ("n_train", "n_test", "teacher")}}
        if rec["method"] == name and found == wanted:
            print(f"{name} seed {cfg.seed}: reusing the finished run in {path}")
            return Run(model=model.eval(), method=rec["method"], config=cfg, history=rec["history"],
                       metrics=rec["metrics"], seconds=rec["seconds"], device=rec["device"],
                       source=rec["source"])
    return None


def load_student(checkpoint_dir, method: str, seed: int, splits: Splits):
    return load_checkpoint(Path(checkpoint_dir) / f"student-{method}-seed{seed}.pt",
                           architecture="LightNN", num_classes=splits.num_classes,
                           hint=f"Run the notebook that trains the {method!r} student first.").eval()


def sweep(method: str, parameter: str, values, splits: Splits, cfg: Config, seeds, teacher,
          results_dir=None) -> pd.DataFrame:
    """Train `method` once per (value of one Config field, seed), everything else as `cfg`.

    Returns one row per run (parameter value, seed, accuracy in %). Records go to
    `results_dir` with `sweep={"parameter", "value"}` added; keep that folder apart from the
    main results, whose table groups records by method alone. The teacher's targets do not
    depend on T, the KD weight or beta, so every run shares one set (cached on disk).
    """
    if parameter not in {f.name for f in fields(Config)}:
        raise ValueError(f"Cannot sweep {parameter!r}: not a kdlib.train.Config field.")
    rows = []
    for value in values:
        print(f"{parameter} = {value}")
        for run in train_method(method, splits, replace(cfg, **{parameter: value}), seeds, teacher):
            if results_dir is not None:
                results.save(results.record(run, sweep={"parameter": parameter, "value": value}),
                             results_dir)
            rows.append({parameter: value, "seed": run.config.seed, "accuracy": 100 * run.accuracy})
    return pd.DataFrame(rows)
