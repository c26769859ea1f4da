"""The steps every notebook repeats, so that its cells stay one line each: build the config
from the notebook's parameters, load the teacher (or say to run 01 first), train a method
over seeds keeping each run's record and checkpoint, and sweep one hyperparameter."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

import pandas as pd
import torch

from . import checks, data, identity, published, results
from .checkpoints import load_checkpoint, save_checkpoint
from .config import Config, cpu_workers, describe_device, resolve_device
from .data import Splits
from .evaluation import evaluate, teacher_outputs
from .files import load_tensors, same_file, weights_digest
from .methods import get as get_method, teaches_here
from .models import build, student_architecture, teacher_architecture
from .targets import teacher_targets
from .train import Run, fit, fit_together

TEACHER_FILE = "teacher.pt"


def config(params: dict, **overrides) -> Config:
    """A `Config` from a notebook's parameters: every name that is a Config field is used.
    Every parameter with a rule in `kdlib.checks` (seeds, sweeps, ...) is checked first, so
    that a bad value stops the notebook here, before any training."""
    names = {f.name for f in fields(Config)}
    unknown = sorted(k for k in overrides if k not in names and k not in checks.RULES)
    if unknown:  # a typo given by name would otherwise be dropped, and the run made with the default
        raise checks.ParameterError(f"Not a setting: {', '.join(unknown)}. kdlib.Config's fields: {', '.join(sorted(names))}.")
    values = {**params, **overrides}
    checks.check({k: v for k, v in values.items() if k in checks.RULES}, where="notebook parameters")
    return Config(**{k: v for k, v in values.items() if k in names})


def teacher_path(checkpoint_dir) -> Path:
    return Path(checkpoint_dir) / TEACHER_FILE


def load_teacher(checkpoint_dir, splits: Splits, family: str = "tutorial"):
    """The teacher of `family` trained by 01_teacher.ipynb on the same data, or a clear error
    saying so."""
    teacher = load_checkpoint(
        teacher_path(checkpoint_dir), architecture=teacher_architecture(family), num_classes=splits.num_classes,
        hint="Run notebooks/01_teacher.ipynb first (with the same data and checkpoint_dir), "
             "set teacher_weights to a published teacher (e.g. \"../weights/teacher-tutorial.pt\"), "
             "or run `python -m kdlib.series`, which runs the notebooks in order.")
    meta = teacher.checkpoint_meta
    trained_on = meta.get("data") or meta.get("source")
    if trained_on and trained_on not in (splits.fingerprint, splits.source):
        raise ValueError(f"The teacher in {teacher_path(checkpoint_dir)} was trained on other data "
                         f"({meta.get('source')!r}, {meta.get('n_train')} training images) than this "
                         f"notebook loads ({splits!r}). Use the same `data`, `n_train`, `n_test` and "
                         "`normalization` as 01_teacher.ipynb, or retrain the teacher.")
    return teacher.eval()


def teacher(splits: Splits, cfg: Config, checkpoint_dir, results_dir=None, weights=None, **meta):
    """The teacher every student notebook distils from: 01's, when this run folder has it;
    else the published `weights`, taken as this run's teacher (so that a notebook runs on its
    own, in Colab too); else a clear error saying to run 01 or set `teacher_weights`."""
    if teacher_path(checkpoint_dir).is_file() and weights is not None:
        came_from = load_tensors(teacher_path(checkpoint_dir))["meta"].get("published")
        if came_from and not same_file(came_from, weights):
            print(f"The run folder's teacher is the published {Path(came_from).name}; this notebook's teacher_weights "
                  f"is {Path(weights).name}: taking that one as the run's teacher from now on (the records of "
                  "students trained before keep their own teacher's digest; tables never mix the two).")
            return take_published_teacher(weights, splits, cfg, results_dir, checkpoint_dir, **meta).model
    if teacher_path(checkpoint_dir).is_file() or weights is None:
        return load_teacher(checkpoint_dir, splits, cfg.family)
    print("No teacher from 01_teacher.ipynb in this run folder: taking the published one.")
    return take_published_teacher(weights, splits, cfg, results_dir, checkpoint_dir, **meta).model


def take_or_train(method: str, splits: Splits, cfg: Config, seeds, teacher=None, results_dir=None,
                  checkpoint_dir=None, **meta) -> list[Run]:
    """Another notebook's runs that this one compares against: taken from the run folder when
    they are there with exactly these settings, data, teacher and code, trained here (saying
    so) when they are not, so that every notebook runs on its own."""
    return train_method(method, splits, cfg, seeds, teacher, results_dir, checkpoint_dir, reuse=True,
                        why_missing="its notebook has not run here", **meta)


def method_config(method: str, cfg: Config) -> Config:
    """`cfg` with the settings `method` declares as its own (08's: the teacher's outputs on the
    plain image, fresh views, mixup), so that a method is trained by its name alone. A setting
    declared as "epochs" takes the run's number of epochs (views="epochs": a view per epoch)."""
    declared = {k: cfg.epochs if v == "epochs" else v for k, v in get_method(method).settings.items()}
    return replace(cfg, **declared) if declared else cfg


def runnable(methods, splits: Splits, family: str = "tutorial") -> list[str]:
    """`methods` without those whose declared teacher does not exist for this data and model
    family (`kdlib.methods.teaches_here`: the published teachers under weights/ are CIFAR-10
    DeepNNs of the tutorial family), saying which. On real data of that family a published
    teacher's checks (classes, normalization, unseen validation images) stay errors."""
    kept = [m for m in methods if teaches_here(m, family, splits.source)]
    skipped = [m for m in methods if m not in kept]
    if skipped:
        print(f"Not run here ({splits.source} data, {family} family): {', '.join(skipped)} (their teachers, "
              f"{', '.join(get_method(m).teacher for m in skipped)}, are CIFAR-10 teachers of another kind).")
    return kept


def applicable(methods, cfg: Config) -> list[str]:
    """`methods` without those whose declared settings cannot apply to this run's (08's ways of
    teaching need augmentation; the plain image's outputs need fixed views), saying why."""
    kept = []
    for method in methods:
        try:
            method_config(method, cfg)
            kept.append(method)
        except checks.ParameterError as error:
            print(f"Not run with these parameters: {method} ({error})")
    return kept


def teacher_of(method: str, teacher, splits: Splits, cfg: Config):
    """Whom `method` learns from, as its declaration says (`Method.teacher`): the run's
    `teacher`, an untrained teacher of the family, or a published teacher under weights/."""
    declared = get_method(method).teacher
    if declared == "run":
        return teacher
    if declared == "untrained":
        return untrained_teacher(splits, cfg)
    return published.load(published.WEIGHTS_DIR.parent / declared, splits, cfg.family)


def take_published_teacher(weights, splits: Splits, cfg: Config, results_dir=None, checkpoint_dir=None,
                           **meta) -> Run:
    """A published teacher (`kdlib.published`, e.g. "../weights/teacher-tutorial.pt") as this
    run's teacher, instead of training one: checked against this data (its classes, its
    normalization, and that this run's validation images were never among its training
    images), measured on its test images and saved as `teacher.pt`, its record carrying the
    recipe it was trained with and the path it came from (and 0 s of training)."""
    path = teacher_path(checkpoint_dir) if checkpoint_dir is not None else None
    run = _published_teacher(weights, splits, cfg)
    _save_run(run, "teacher", splits, None, path, results_dir,
              {**meta, "published": str(weights), "images": run.model.checkpoint_meta.get("images")}, recipe="ce")
    print(f"teacher: the published {Path(weights).name}, test accuracy {100 * run.accuracy:.2f}% "
          f"on this data ({100 * run.model.checkpoint_meta['accuracy']:.2f}% when it was published)")
    return run


def train_teacher(splits: Splits, cfg: Config, results_dir=None, checkpoint_dir=None,
                  reuse: bool = False, snapshots=(), **meta) -> Run:
    """Train the teacher of `cfg.family` with cross-entropy; save its record (as "teacher") and
    `teacher.pt`, which every student notebook loads. `reuse`: see `train_method`.

    snapshots: epochs after which the teacher's weights are also kept, as
    `teacher-epochNNN.pt` beside `teacher.pt` (weaker teachers of the same lineage)."""
    path = teacher_path(checkpoint_dir) if checkpoint_dir is not None else None
    # The teacher has no teacher: nothing needs its views fixed, and a fresh crop and flip at
    # every step gives it the augmentation that 8 fixed views (seen ~4 times each in 30
    # epochs) do not. The students' view table stays as `cfg.views` says.
    cfg = replace(cfg, views=0)
    architecture = teacher_architecture(cfg.family)
    run = _finished_run("teacher", architecture, splits, cfg, results_dir, path, recipe="ce") if reuse else None
    if run is None:
        def snapshot(epoch, runs):
            if epoch in snapshots and path is not None:
                save_checkpoint(runs[0].model, path.with_name(f"teacher-epoch{epoch:03d}.pt"), method="teacher",
                                epoch=epoch, history=runs[0].history, images=images, **identity.of_run(cfg, splits, None, "ce"))
        images = data.images_mask(splits.train_index, splits.n_source_train or len(splits.y_train))
        run = fit(build(architecture, splits.num_classes, seed=cfg.seed), splits, "ce", cfg=cfg,
                  state=_state_file(path, reuse), label="teacher", on_epoch=snapshot)
        _save_run(run, "teacher", splits, None, path, results_dir, {"fresh_views": True, "images": images, **meta},
                  recipe="ce")
    print(f"teacher: test accuracy {100 * run.accuracy:.2f}% ({run.seconds:.0f} s, {run.device})")
    return run


def _published_teacher(weights, splits: Splits, cfg: Config) -> Run:
    """A Run for a published teacher: its own recipe and training history, this data's metrics."""
    teacher = published.load(weights, splits, cfg.family)
    stored = teacher.checkpoint_meta
    own = {k: v for k, v in stored["config"].items() if k in {f.name for f in fields(Config)}}
    recipe = Config(**{**own, "device": cfg.device, "amp": cfg.amp, "progress": cfg.progress})
    return Run(model=teacher, method="ce", config=recipe, history=stored["history"],
               metrics=evaluate(teacher, splits, cfg=cfg), seconds=0.0,
               device=describe_device(resolve_device(cfg.device)), source=splits.source, group=[recipe.seed])


def train_method(method: str, splits: Splits, cfg: Config, seeds, teacher=None,
                 results_dir=None, checkpoint_dir=None, reuse: bool = False,
                 tag: str = "", together: int | None = None, why_missing: str = "", **meta) -> list[Run]:
    """Train a fresh student of `cfg.family` with `method` once per seed; save records and
    checkpoints under the method's name.

    teacher: the run's teacher. The method's declaration says whom it learns from
    (`teacher_of`): a control such as "kd_untrained" builds its own untrained teacher, so that
    what is trained is exactly what the tables call it. A teacher given to "ce" (or "ls") is
    used only for the agreement metric, so that the baseline's agreement with the teacher can
    be compared with the distilled students'. The teacher's targets are computed once (or read
    from the cache) and shared by all seeds.
    reuse: take a seed's finished run (checkpoint and record with the same settings, data,
    teacher and code) instead of training it again, so that an interrupted series resumes
    where it stopped. tag: part of the checkpoint's name, for runs of one method with other
    settings (the sweeps); together: how many seeds train at once as one stacked network
    (`kdlib.train.fit_together`); by default all of them on a GPU, where the student is
    launch-bound, and one at a time on the CPU, where stacking is slower (three LightNNs on a
    2-core EPYC: docs/engine.md); why_missing: with reuse, say which seeds are not finished here
    and why (`take_or_train`: another notebook's runs); meta: extra fields of the record and checkpoint.
    """
    recipe = get_method(method)
    cfg = method_config(method, cfg)
    given_teacher, teacher = teacher, teacher_of(method, teacher, splits, cfg)
    if recipe.control:
        meta = {"control": recipe.control, **meta}
    if teacher is not None and recipe.needs:
        meta = {**teacher_images(teacher, splits), **meta}
    seeds = list(seeds) if isinstance(seeds, (list, tuple, range)) else seeds
    checks.check({"seeds": seeds}, where="train_method")
    if together is None:
        together = len(seeds) if resolve_device(cfg.device).type == "cuda" else 1
    architecture = student_architecture(cfg.family)

    def checkpoint(seed):
        return Path(checkpoint_dir) / f"student-{method}{tag}-seed{seed}.pt" if checkpoint_dir is not None else None

    # Seeds train in groups of `together`, decided before reuse: a group's seeds share one
    # stream of dropout masks, so a finished group is taken whole or trained whole.
    groups = [seeds[i:i + together] for i in range(0, len(seeds), together)]
    done = {}
    for group in groups if reuse else []:
        found = {seed: _finished_run(method, architecture, splits, replace(cfg, seed=seed), results_dir,
                                     checkpoint(seed), teacher, group) for seed in group}
        if all(found.values()):
            done.update(found)
    reused = set(done)
    pending = [group for group in groups if group[0] not in done]
    if pending and why_missing:
        print(f"{method}: no finished run for seed(s) {[seed for group in pending for seed in group]} in this run "
              f"folder ({why_missing}): training it now, with this notebook's parameters.")
    targets = teacher_targets(teacher, splits, cfg, needs=recipe.needs) if pending and recipe.needs and cfg.fixed_views else None
    workers = min(cpu_workers(cfg.workers), len(pending)) if resolve_device(cfg.device).type == "cpu" else 1
    if workers > 1:  # the groups side by side, each in a process of one thread
        if teacher is not None:  # what the workers' metrics need of it, computed here once for both
            teacher_outputs(teacher, splits, cfg)
        done.update(_train_side_by_side(workers, method, splits, cfg, pending, given_teacher, results_dir,
                                        checkpoint_dir, reuse, tag, meta))
        pending = []
    for group in pending:
        students = [build(architecture, splits.num_classes, seed=seed) for seed in group]
        state = _state_file(checkpoint(group[0]), reuse, "+".join(map(str, group)) if len(group) > 1 else "")
        for run in fit_together(students, splits, method, teacher, cfg, group, targets, state,
                                label=f"{method}{tag} seed {'+'.join(map(str, group))}"):
            _save_run(run, method, splits, teacher, checkpoint(run.config.seed), results_dir, meta)
            done[run.config.seed] = run
    runs = [done[seed] for seed in seeds]
    for run in runs:
        if run.config.seed not in reused:
            shared = f", trained with {run.together - 1} other seed(s)" if run.together > 1 else ""
            print(f"{method}{tag} seed {run.config.seed}: test accuracy {100 * run.accuracy:.2f}% "
                  f"({run.seconds:.0f} s{shared}, {run.device})")
    if reused:
        print(f"{method}{tag}: seed(s) {sorted(reused)} taken from this run folder (finished with the same settings, "
              f"data, teacher and code): test accuracy " + ", ".join(f"{100 * done[s].accuracy:.2f}%" for s in sorted(reused)))
    return runs


def _train_side_by_side(workers: int, method, splits, cfg, groups, teacher, results_dir, checkpoint_dir, reuse,
                        tag, meta) -> dict:
    """Each group trained by `train_method` in a worker process of one thread, `workers` at a
    time (spawned: a forked process would inherit torch's thread pool). A worker saves its
    records, checkpoints and epoch states as any run does; the first failure is raised here,
    with the worker's own message, once the others have ended."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    print(f"{method}{tag}: seeds {groups} side by side, {workers} processes of one thread each")
    one_each = replace(cfg, workers=1, progress=False)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_worker_setup) as pool:
        futures = [pool.submit(_train_in_worker, method, splits, one_each, group, _Shipped.of(teacher), results_dir,
                               checkpoint_dir, reuse, tag, 1, **meta) for group in groups]
        runs = [run for future in futures for run in future.result()]
    return {run.config.seed: replace(run, config=replace(run.config, workers=cfg.workers, progress=cfg.progress))
            for run in runs}


def _train_in_worker(*args, **kwargs) -> list[Run]:
    """`train_method` in a worker process, its students sent back by their weights (`_Shipped`)."""
    return [replace(run, model=_Shipped(run.model)) for run in train_method(*args, **kwargs)]


class _Shipped:
    """A model crossing to or from a worker process as its class name, weights and attributes
    (such as `checkpoint_meta`), rebuilt on arrival: torch refuses to pickle a module with
    parametrizations, and the reference family's weight-normalized layers are such modules."""

    def __init__(self, model: torch.nn.Module):
        self.model = model

    @classmethod
    def of(cls, model):
        return None if model is None else cls(model)

    def __reduce__(self):
        model = self.model
        # what was set on it after it was built (torch's own state is underscored; `training` is passed)
        attributes = {k: v for k, v in vars(model).items() if not k.startswith("_") and k not in ("training", "num_classes")}
        return _rebuilt, (type(model).__name__, model.num_classes, model.state_dict(), attributes, model.training)


def _rebuilt(architecture: str, num_classes: int, state: dict, attributes: dict, training: bool) -> torch.nn.Module:
    model = build(architecture, num_classes)
    model.load_state_dict(state)
    vars(model).update(attributes)
    return model.train(training)


def _worker_setup() -> None:
    """One thread; the worker's own lines go nowhere (its caller prints each run's line, and the
    engine's epoch lines reach $KDLIB_PROGRESS_FILE, which the worker inherits)."""
    import os
    import sys
    torch.set_num_threads(1)
    sys.stdout = open(os.devnull, "w")


def _state_file(checkpoint, reuse: bool, seeds: str = "") -> Path | None:
    """Where a run keeps its epoch state (beside its checkpoint-to-be), so that an interrupted
    run continues from its last finished epoch; None without a checkpoint folder. Without
    `reuse` an old state is removed first: the run starts from its first epoch, as asked."""
    if checkpoint is None:
        return None
    path = Path(checkpoint)
    state = path.with_name(f"{path.stem}{'-seeds' + seeds if seeds else ''}.state.pt")
    if not reuse:
        state.unlink(missing_ok=True)
    return state


def teacher_images(teacher, splits: Splits) -> dict:
    """What a run's record says of its teacher's training images: how many it saw and whether
    they are exactly the students' (so that a table can say what KD's gain mixes in)."""
    meta = getattr(teacher, "checkpoint_meta", {})
    if not meta or splits.n_source_train is None:  # untrained, or data without an index of its images
        return {}
    total = splits.n_source_train
    images = meta.get("images") or data.images_mask(None, total)
    seen = data.mask_indices(images)
    students = data.mask_indices(data.images_mask(splits.train_index, total))
    return {"teacher_images": int(seen.sum()), "teacher_accuracy": meta.get("accuracy"),
            "teacher_saw_students_images": bool(len(seen) == total and torch.equal(seen, students))}


def untrained_teacher(splits: Splits, cfg: Config):
    """A teacher of `cfg.family` with its initial random weights: the control for KD that the
    reference table measured without knowing it (it never loaded its trained teacher)."""
    return build(teacher_architecture(cfg.family), splits.num_classes, seed=1).eval()


def _save_run(run: Run, name: str, splits: Splits, teacher, path, results_dir, meta: dict,
              recipe: str | None = None) -> None:
    """Save a finished run with its identity (`kdlib.identity`): checkpoint first, then record
    (a record with no checkpoint is never taken as finished)."""
    ident = identity.of_run(run.config, splits, teacher, recipe or name, run.group)
    if path is not None:
        save_checkpoint(run.model, path, method=name, seed=run.config.seed, accuracy=run.accuracy,
                        **ident, **meta)
    if results_dir is not None:
        results.save(results.record(run, name=name, weights=weights_digest(run.model), **ident, **meta),
                     results_dir)


def _finished_run(name: str, architecture: str, splits: Splits, cfg: Config, results_dir,
                  path, teacher=None, group=None, any_group: bool = False, recipe: str | None = None) -> Run | None:
    """The recorded run `name` with exactly this identity (settings, data, teacher, recipe,
    code, device type, precision and seeds trained together: `group`, or any with
    `any_group`), rebuilt from its record and checkpoint; None when there is none (then the
    caller trains)."""
    if results_dir is None or path is None or not Path(path).is_file():
        return None
    wanted = identity.of_run(cfg, splits, teacher, recipe or name, group)
    if any_group:
        del wanted["group"]
    model = load_checkpoint(path, num_classes=splits.num_classes)
    if type(model).__name__ != architecture or not identity.matches(model.checkpoint_meta, wanted):
        return None
    weights = weights_digest(model)
    for rec in reversed(results.load(results_dir)):
        if rec["method"] == name and rec.get("weights") == weights and identity.matches(rec, wanted):
            return Run(model=model.eval(), method=rec["method"], config=cfg, history=rec["history"],
                       metrics=rec["metrics"], seconds=rec["seconds"], device=rec["device"],
                       source=rec["source"], group=rec.get("group", [cfg.seed]))
    return None


def load_student(checkpoint_dir, method: str, seed: int, splits: Splits, family: str = "tutorial"):
    return load_checkpoint(Path(checkpoint_dir) / f"student-{method}-seed{seed}.pt",
                           architecture=student_architecture(family), num_classes=splits.num_classes,
                           hint=f"Run the notebook that trains the {method!r} student first.").eval()


def sweep(method: str, parameter: str, values, splits: Splits, cfg: Config, seeds, teacher,
          results_dir=None, checkpoint_dir=None, reuse: bool = False, main=None) -> pd.DataFrame:
    """Train `method` once per (value of one Config field, seed), everything else as `cfg`.

    Returns one row per run: parameter value, seed, val_accuracy (%, on the validation split:
    what a choice of the value may read; NaN without one), accuracy (test, %: reported,
    never chosen on; see `best`) and device (where it ran, with its thread count). Records go to
    `results_dir` with `sweep={"parameter", "value"}` added (keep that folder apart from
    the main results), checkpoints to `checkpoint_dir` named by knob and value; with
    `reuse`, finished sweep runs are taken as in `train_method`. The teacher's targets do
    not depend on T, the KD weight or beta, so every run shares one set (cached on disk).

    main: the (results_dir, checkpoint_dir) of the series' main runs. A sweep point that is
    exactly a main run (the same settings, data, teacher and code: the knob at its main value)
    is that run, taken from there instead of trained again.
    """
    if parameter not in {f.name for f in fields(Config)}:
        raise ValueError(f"Cannot sweep {parameter!r}: not a kdlib.Config field.")
    rows = []
    for value in values:
        print(f"{parameter} = {value}")
        point = method_config(method, replace(cfg, **{parameter: value}))
        found = {}
        if main is not None:
            for seed in seeds:
                # Trained in any group: the main run is a fair draw of this point, grouped or not.
                run = _finished_run(method, student_architecture(cfg.family), splits, replace(point, seed=seed),
                                    main[0], Path(main[1]) / f"student-{method}-seed{seed}.pt",
                                    teacher_of(method, teacher, splits, cfg), any_group=True)
                if run is not None:
                    found[seed] = run
                    print(f"{method} seed {seed}, {parameter} = {value:g}: the main run (student-{method}-seed{seed}.pt), "
                          f"test accuracy {100 * run.accuracy:.2f}%")
        rest = [seed for seed in seeds if seed not in found]
        trained = train_method(method, splits, point, rest, teacher, results_dir, checkpoint_dir, reuse,
                               tag=f"-{parameter}{value:g}", sweep={"parameter": parameter, "value": value}) if rest else []
        for run in [*found.values(), *trained]:
            rows.append({parameter: value, "seed": run.config.seed,
                         "val_accuracy": 100 * run.metrics.get("val_accuracy", float("nan")),
                         "accuracy": 100 * run.accuracy, "device": run.device})
    return pd.DataFrame(rows).sort_values([parameter, "seed"], ignore_index=True)


def best(runs: pd.DataFrame, parameter: str):
    """The swept value with the highest mean validation accuracy over seeds: the choice reads
    the validation split only, so the test set stays a fair report of it."""
    if runs["val_accuracy"].isna().any():
        raise ValueError("These sweep runs have no validation accuracy: load the data with n_val > 0 "
                         "to choose a value (the test set must not choose).")
    return runs.groupby(parameter)["val_accuracy"].mean().idxmax()
