"""The one training engine: teacher and every student method, CPU or CUDA.

    fit(model, splits, method, teacher, cfg)          -> Run        train one model, then evaluate
    fit_together(models, splits, method, ..., seeds)  -> list[Run]  several seeds as one network

Read `fit_together` top-down: set up (data on the device, models, the method's own modules,
where the teacher's targets come from, optimizer), then per epoch `_epoch` (batches from
`_batch`, one `_Step` each: targets, forward, the recipe's loss), `_record_epoch` (the history
row) and the epoch state; then `kdlib.evaluation.evaluate`.

Its neighbours: `kdlib.config` (what decides a run), `kdlib.identity` (what a run is),
`kdlib.targets` (the teacher's outputs for every view, once), `kdlib.members` (seeds stacked
into one network), `kdlib.evaluation` (the metrics of a trained model).

Why it is fast: the dataset stays on the device as uint8 and batches are gathered from a
shuffled index there; the teacher's outputs are computed once per image view (not per
step) and gathered by index, so a KD or attention epoch costs about what a CE epoch costs;
models run in channels_last, with bf16 autocast and optional torch.compile on CUDA; on a GPU,
`fit_together` trains the seeds of a method as one stacked network, one kernel launch for all.

Augmentation and the teacher: with `cfg.views = V > 0` every image has V fixed random
views (crop + flip), drawn from `cfg.view_seed` and shared by all runs; a step shows each
image one of its views, and the teacher's targets for exactly that view are looked up.
With `cfg.views = 0` views are drawn fresh at every step and the teacher runs live on
the same batch the student sees (exact, but a teacher forward pass per step).
"""

from __future__ import annotations

import math
import os
import time
from contextlib import nullcontext
from pathlib import Path
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from . import data, identity, methods, stopping
from .config import Config, autocast, describe_device, flush_denormals, resolve_device
from .files import load_tensors, save_tensors, weights_digest
from .members import Members
from .models import forward_features, hint_stage, segments
from .evaluation import evaluate, predict
from .targets import Targets, distillation_targets, make_mixing, make_views, mixed_view_batch, teacher_targets


@dataclass
class Run:
    """What `fit` returns: the trained model, per-epoch history and final metrics."""

    model: nn.Module
    method: str
    config: Config
    history: list[dict] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    seconds: float = 0.0   # wall time; trained together, this run's share of the group's
    device: str = ""
    source: str = ""
    group: list[int] = field(default_factory=list)  # the seeds trained with it as one network (fit_together)

    @property
    def accuracy(self) -> float:
        return self.metrics["accuracy"]

    @property
    def together(self) -> int:
        """How many models trained together in one network (1: alone)."""
        return max(1, len(self.group))


def fit(model: nn.Module, splits: data.Splits, method: str = "ce",
        teacher: nn.Module | None = None, cfg: Config | None = None,
        targets: Targets | None = None, state=None, label: str | None = None, on_epoch=None) -> Run:
    """Train `model` on `splits.x_train` with a method's loss; return a `Run`.

    method: a name in kdlib.methods.METHODS ("ce", "kd", "grad_at", "act_at", "kd_grad_at",
    "ls", "cosine", "regressor", ...). teacher: needed by every method that distils (given for
    "ce", it is used for the metrics' agreement with the teacher only). targets: precomputed
    `teacher_targets` for exactly these splits, views and teacher (checked; computed here, or
    read from the cache, when not given). state, label, on_epoch: an epoch-state file to
    continue from and keep, the run's name in progress lines, a call after each epoch (see
    `fit_together`).

    The one-cycle schedule (Adam, `cfg.schedule="onecycle"`) steps once per batch: the rate
    rises from lr/25 to lr over the first 30% of steps, then anneals to lr/25e4, and, as
    torch's OneCycleLR does by default, Adam's beta1 cycles the other way (0.95 -> 0.85 ->
    0.95). The history's `lr` is the rate of each epoch's last step. The last batch of an
    epoch is the remainder (smaller), as in any DataLoader without drop_last.
    """
    cfg = cfg or Config()
    return fit_together([model], splits, method, teacher, cfg, [cfg.seed], targets, state, label, on_epoch)[0]


def fit_together(models: list[nn.Module], splits: data.Splits, method: str = "ce",
                 teacher: nn.Module | None = None, cfg: Config | None = None, seeds=None,
                 targets: Targets | None = None, state: str | os.PathLike | None = None,
                 label: str | None = None, on_epoch=None) -> list[Run]:
    """Train several models of one architecture at once, model i as `fit(models[i], ...,
    replace(cfg, seed=seeds[i]))` would: from its own weights, in its own shuffled order with
    its own views (both drawn from its seed), with its own gradients and Adam state. With more
    than one model they run as one stacked network (`kdlib.members`): on a GPU, where a small
    student is launch-bound, N seeds then cost about the time of one. What differs from
    training apart is only the dropout masks (drawn for all members from one stream).

    state: a file that holds the run's whole state after each finished epoch (weights, Adam,
    schedule, every random generator, history, seconds), replaced atomically. Given one that
    an interrupted run of exactly this training left, the run continues after its last
    finished epoch and ends as it would have uninterrupted (bit for bit on the CPU); a state
    of other training is set aside with a message and the run starts afresh. The file is
    removed when the run ends. label: how progress lines name the run (default: the method).
    on_epoch: called as on_epoch(epoch, runs) after each epoch's history row (snapshots).

    Returns a Run per model; each Run's `seconds` is its share (1/N) of the group's wall time.
    """
    cfg = cfg or Config()
    seeds = [cfg.seed] if seeds is None else list(seeds)
    recipe = methods.get(method)
    _check_inputs(models, seeds, splits, recipe, teacher, cfg)
    device = resolve_device(cfg.device)
    flush_denormals()  # again: this thread at least, where torch ran before kdlib was imported
    # What an epoch state must match to be continued: this very training, from its first weights.
    state_key = identity.key(identity.of_run(cfg, splits, teacher, recipe.name, seeds),
                             [weights_digest(m) for m in models]) if state is not None else None

    # The whole dataset on the training device, once: every batch is then gathered, normalized
    # and augmented there, with no per-step copy from host memory.
    splits = splits.to(device)
    torch.manual_seed(seeds[0])  # dropout's masks
    generators = [torch.Generator(device=splits.device).manual_seed(s) for s in seeds]
    models = [m.to(device, memory_format=torch.channels_last) for m in models]
    net = models[0] if len(models) == 1 else Members(models).to(device)
    heads = _heads(recipe, cfg, seeds, device)
    trained = nn.ModuleList([net, *heads])  # what the optimizer updates and an epoch state keeps
    teacher_source = _teacher_source(recipe, teacher, targets, splits, cfg)
    step = _Step(_forward(net, cfg.compile, recipe.reads_stages), recipe, teacher_source, _apply_heads(heads), cfg,
                 device, len(models))
    steps_per_epoch = math.ceil(len(splits.y_train) / cfg.batch_size)
    optimizer, scheduler = _optimizer(trained, cfg, steps_per_epoch, device)

    runs = [Run(model=m, method=recipe.name, config=replace(cfg, seed=s), device=describe_device(device),
                source=splits.source, group=seeds) for m, s in zip(models, seeds)]
    label = (label or recipe.name) + (f" x{len(models)}" if len(models) > 1 else "")
    resumable = (trained, optimizer, scheduler, generators, runs)
    # One process at a time trains a run: a second (an orphaned kernel, a second --resume) would
    # write the same epoch state.
    with (stopping.exclusive(Path(state).with_suffix(".lock"), f"The epoch state {Path(state).name}")
          if state is not None else nullcontext()):
        first, elapsed = _resume(state, state_key, *resumable) if state is not None else (1, 0.0)
        if first > 1 and isinstance(net, Members):
            net.write_back()
        bar = _progress(cfg.epochs * steps_per_epoch, label, cfg.progress, initial=(first - 1) * steps_per_epoch)
        started = time.perf_counter() - elapsed * len(models)
        for epoch in range(first, cfg.epochs + 1):
            epoch_start = time.perf_counter()
            trained.train()
            sums = _epoch(step, splits, generators, optimizer, scheduler, steps_per_epoch, bar, epoch)
            seconds = (time.perf_counter() - epoch_start) / len(models)
            if isinstance(net, Members):
                net.write_back()
            _record_epoch(runs, epoch, sums, seconds, splits, cfg)
            if on_epoch is not None:
                on_epoch(epoch, runs)
            elapsed = (time.perf_counter() - started) / len(models)
            if state is not None and epoch < cfg.epochs:
                _save_state(state, state_key, epoch, elapsed, *resumable)
            _show(bar, label, runs[0].history[-1], cfg.epochs, elapsed)
        bar.close()
        for run in runs:
            run.seconds = elapsed
            run.metrics = evaluate(run.model, splits, teacher=teacher, cfg=cfg)
            if splits.y_val is not None:  # what sweeps and screens choose on
                run.metrics["val_accuracy"] = run.history[-1]["val_acc"]
    if state is not None:  # the finished run's checkpoint is its caller's to keep
        Path(state).unlink(missing_ok=True)
        Path(state).with_suffix(".lock").unlink(missing_ok=True)
    return runs


def _check_inputs(models, seeds, splits: data.Splits, recipe: methods.Method, teacher, cfg: Config) -> None:
    """Every mistake that would otherwise fail deep inside torch, said before any work."""
    if cfg.mixup and "grad" in recipe.needs:
        raise ValueError(f"mixup=True blends labels, but {recipe.name!r} draws gradient maps from each image's own "
                         "label: use mixup with a method without gradient attention (e.g. 'kd').")
    if len(seeds) != len(models) or not models:
        raise ValueError(f"fit_together needs one seed per model: got {len(models)} models and seeds {seeds}.")
    if recipe.needs and teacher is None:
        raise ValueError(f"Method {recipe.name!r} needs a teacher: pass teacher=... (train one "
                         "in notebooks/01_teacher.ipynb and load it with kdlib.load_checkpoint).")
    if teacher is not None and getattr(teacher, "num_classes", splits.num_classes) != splits.num_classes:
        raise ValueError(f"The teacher predicts {teacher.num_classes} classes but the data has "
                         f"{splits.num_classes}: train the teacher on the same data source.")
    if len(splits.y_train) == 0 or len(splits.y_test) == 0:
        raise ValueError(f"{splits!r} has no training or no test images: give kdlib.load a source "
                         "with both, and n_train / n_test of at least 1.")


@dataclass
class _TeacherSource:
    """Where a step's teacher targets come from: the table of every view's (fixed views), the
    teacher run live on the step's batch (fresh views), or nowhere (a method with no teacher);
    and the student's fixed views (with mixup, their blends) that the table's rows are for."""

    views: torch.Tensor | None = None      # the student's fixed view table (N, V, 3); None: fresh views
    mixing: tuple | None = None            # with mixup on fixed views: each view's partner and weight (N, V)
    table: Targets | None = None
    live: nn.Module | None = None
    needs: tuple = ()
    feature_stage: int | None = None

    def __call__(self, index, choice, x, y, cfg: Config, device) -> dict:
        if self.live is not None:
            with autocast(device, cfg.amp):
                return distillation_targets(self.live, x, y, self.needs, self.feature_stage)
        if self.table is not None:  # one target view per image ("plain") or one per student view
            view = choice if self.table.views.shape[1] == self.views.shape[1] else torch.zeros_like(choice)
            return {k: _to(v, device) for k, v in self.table.gather(index, view).items()}
        return {}


def _teacher_source(recipe: methods.Method, teacher, targets: Targets | None, splits: data.Splits,
                    cfg: Config) -> _TeacherSource:
    """With fixed views, the teacher's targets for every view (given, checked, or computed
    once); with fresh views, the teacher itself, run on each batch."""
    source = _TeacherSource(needs=recipe.needs, feature_stage=hint_stage(cfg.family))
    if recipe.needs and not cfg.fixed_views:
        source.live = teacher.to(splits.device, memory_format=torch.channels_last).eval()
        return source
    if targets is not None:  # given by the caller: they must be for exactly this run
        targets.check(splits, cfg, teacher, recipe.needs)
    elif recipe.needs:
        targets = teacher_targets(teacher, splits, cfg, needs=recipe.needs)
    if targets is not None:
        source.table = targets.to(splits.device)
    if cfg.fixed_views:
        source.views = make_views(len(splits.y_train), cfg).to(splits.device)
        mixing = make_mixing(len(splits.y_train), cfg)
        source.mixing = None if mixing is None else tuple(m.to(splits.device) for m in mixing)
    return source


def _heads(recipe: methods.Method, cfg: Config, seeds, device) -> list[nn.Module]:
    """The method's own trainable modules (the regressor), one per model, from its seed."""
    if recipe.head is None:
        return []
    return [recipe.head(cfg, seed).to(device, memory_format=torch.channels_last) for seed in seeds]


def _apply_heads(heads: list[nn.Module]):
    """x (the members' rows, one after another) -> each member's rows through its own head."""
    if not heads:
        return None
    if len(heads) == 1:
        return heads[0]
    return lambda x: torch.cat([head(rows) for head, rows in zip(heads, x.chunk(len(heads)))])


def _optimizer(trained: nn.Module, cfg: Config, steps_per_epoch: int, device):
    # fused on CUDA: one kernel for the whole update instead of several per weight tensor (a
    # launch-bound student feels each); the CPU keeps the default, whose figures are measured.
    optimizer = torch.optim.Adam(trained.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                 fused=device.type == "cuda" or None)
    scheduler = (torch.optim.lr_scheduler.OneCycleLR(optimizer, cfg.lr, total_steps=cfg.epochs * steps_per_epoch)
                 if cfg.schedule == "onecycle" else None)
    return optimizer, scheduler


@dataclass
class _Step:
    """One training step's loss for every member: forward, the teacher's targets, the recipe."""

    forward: object
    recipe: methods.Method
    teacher: _TeacherSource
    head: object
    cfg: Config
    device: torch.device
    members: int

    def __call__(self, index, choice, x, y):
        """The logits and, per loss term, each member's batch mean (`methods.member_losses`)."""
        targets = self.teacher(index, choice, x, y, self.cfg, self.device)
        with autocast(self.device, self.cfg.amp):
            return methods.member_losses(self.forward, self.recipe, x, y, targets, self.cfg, self.members, self.head)


def _epoch(step: _Step, splits: data.Splits, generators, optimizer, scheduler, steps_per_epoch: int, bar,
           epoch: int = 1) -> dict:
    """One pass over the training images, every member in its own order. Returns the sums the
    epoch's record needs: per member, correct predictions, summed loss and each term's sum."""
    cfg, members = step.cfg, step.members
    totals = torch.zeros(members, 2, device=step.device)  # per member: correct predictions, summed loss
    terms_sum: dict[str, torch.Tensor] = {}
    orders = [torch.randperm(len(splits.y_train), generator=g, device=splits.device) for g in generators]
    for k in range(steps_per_epoch):
        rows = slice(k * cfg.batch_size, (k + 1) * cfg.batch_size)
        index, choice, x, taught = _batch(splits, orders, generators, step.teacher, cfg, rows, step.device, epoch)
        y = splits.y_train[index].to(step.device, non_blocking=True)
        logits, per_member = step(index, choice, x, taught)
        loss = sum(value.sum() for value in per_member.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        lr = optimizer.param_groups[0]["lr"]
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        # Accumulate on the device: a .item() per step would force a sync on CUDA.
        with torch.no_grad():
            size = len(index) // members
            correct = (logits.argmax(1) == y).view(members, -1).sum(1).float()
            totals += torch.stack([correct, sum(per_member.values()).detach() * size], 1)
            for name, value in per_member.items():
                terms_sum[name] = terms_sum.get(name, 0) + value.detach() * size
        bar.update(1)
    # .tolist() waits for the epoch's last step on CUDA: the caller's clock is then right.
    return {"totals": totals.tolist(), "terms": {k: v.tolist() for k, v in terms_sum.items()}, "lr": lr}


def _record_epoch(runs: list[Run], epoch: int, sums: dict, seconds: float, splits: data.Splits, cfg: Config) -> None:
    """Each run's history row for this epoch (means over its images), with its held-out accuracy."""
    n = len(splits.y_train)
    for i, run in enumerate(runs):
        correct, loss_sum = sums["totals"][i]
        row = {"epoch": epoch, "loss": loss_sum / n, "train_acc": correct / n,
               **{f"loss_{k}": v[i] / n for k, v in sums["terms"].items()},
               "lr": sums["lr"], "seconds": seconds}
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
            row.update(_held_out_accuracy(run.model, splits, cfg))
        run.history.append(row)


def _batch(splits: data.Splits, orders, generators, source: _TeacherSource, cfg: Config, rows: slice, device,
           epoch: int = 1):
    """One step's batch for every member, one after another: each member's next images (its
    own shuffled order) in one of their views (a fixed view from `source.views`: drawn at random,
    or with `cfg.view_order = "epoch"` view (epoch - 1) mod V of every image; or a fresh crop and
    flip), with mixup blended with a partner (from `source.mixing` on fixed views; with fresh
    views drawn now within each member's rows), augmented and normalized on the device. Returns
    the image indices, the view choices (for the teacher's targets of exactly those views), the
    images and what the loss is taught (the labels; with mixup, blended class probabilities)."""
    index = torch.cat([order[rows] for order in orders])
    size = len(index) // len(orders)
    if source.views is None:  # fresh views
        views = torch.cat([data.random_views(size, g) for g in generators])
        x = data.view_batch(splits, index, views, cfg.augment, device)
        y = splits.y_train[index].to(device, non_blocking=True)
        if cfg.mixup:  # function matching: the live teacher sees these very mixed images
            return index, None, *data.mix(x, y, splits.num_classes, generators)
        return index, None, x, y
    count = source.views.shape[1]
    if cfg.view_order == "epoch":  # with V = epochs, a view never shown before at every epoch
        choice = torch.full((len(index),), (epoch - 1) % count, device=splits.device)
    else:
        choice = torch.cat([torch.randint(0, count, (size,), generator=g, device=splits.device) for g in generators])
    return index, choice, *mixed_view_batch(splits, index, choice, source.views, source.mixing, cfg.augment, device)


def _held_out_accuracy(model: nn.Module, splits: data.Splits, cfg: Config) -> dict:
    """The learning curve's point: validation accuracy where the data has a validation split
    (so that nothing is read off the test set while training), test accuracy otherwise."""
    if splits.y_val is not None:
        logits = predict(model, splits.x_val, splits, cfg)
        return {"val_acc": float((logits.argmax(1) == splits.y_val.cpu()).float().mean())}
    return {"test_acc": evaluate(model, splits, cfg=cfg, detailed=False)["accuracy"]}


def _show(bar, label: str, row: dict, epochs: int, elapsed: float) -> None:
    """The epoch on the progress bar, and as one line into $KDLIB_PROGRESS_FILE, which
    `kdlib.series` prints as it grows: papermill shows only which cell runs, and a CPU teacher
    runs for hours."""
    held_out = {k: v for k, v in row.items() if k in ("val_acc", "test_acc")}
    bar.set_postfix(epoch=row["epoch"], loss=f"{row['loss']:.3f}", **{k: f"{v:.4f}" for k, v in held_out.items()})
    path = os.environ.get("KDLIB_PROGRESS_FILE")
    if not path:
        return
    shown = "".join(f"  {k[:-4]} {100 * v:.2f}%" for k, v in held_out.items())
    left = elapsed / row["epoch"] * (epochs - row["epoch"])
    line = (f"{label}  epoch {row['epoch']}/{epochs}  loss {row['loss']:.3f}  train {100 * row['train_acc']:.2f}%"
            f"{shown}  {row['seconds']:.1f} s/epoch  {left / 60:.1f} min left\n")
    with open(path, "a") as log:
        log.write(line)


def _save_state(path, key: str, epoch: int, elapsed: float, trained, optimizer, scheduler, generators, runs) -> None:
    """Everything needed to continue after `epoch`, in one file written atomically."""
    save_tensors({"key": key, "epoch": epoch, "elapsed": elapsed, "trained": trained.state_dict(),
                  "optimizer": optimizer.state_dict(),
                  "scheduler": None if scheduler is None else scheduler.state_dict(),
                  "generators": [g.get_state() for g in generators], "rng": torch.get_rng_state(),
                  "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
                  "histories": [run.history for run in runs]}, path)


def _resume(path, key: str, trained, optimizer, scheduler, generators, runs) -> tuple[int, float]:
    """Restore an epoch state written by `_save_state` for this very training: the first
    epoch still to run and the seconds already spent. (1, 0.0) when there is none to take."""
    path = Path(path)
    if not path.is_file():
        return 1, 0.0
    try:
        saved = load_tensors(path)
        if saved.get("key") != key:
            print(f"{path.name}: an epoch state of other training (settings, data, teacher, code or "
                  "first weights differ); not continued: this run starts afresh.")
            return 1, 0.0
        trained.load_state_dict(saved["trained"])
        optimizer.load_state_dict(saved["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(saved["scheduler"])
        for generator, value in zip(generators, saved["generators"]):
            generator.set_state(value)
        torch.set_rng_state(saved["rng"])
        if saved["cuda_rng"]:
            torch.cuda.set_rng_state_all(saved["cuda_rng"])
        for run, history in zip(runs, saved["histories"]):
            run.history = list(history)
    except Exception as error:  # damaged or truncated: the run is trained from the start
        print(f"{path.name}: the epoch state could not be read ({type(error).__name__}: {error}); "
              "this run starts afresh.")
        return 1, 0.0
    print(f"{path.name}: continuing after epoch {saved['epoch']} of an interrupted run.")
    return saved["epoch"] + 1, float(saved["elapsed"])


def _forward(net: nn.Module, compile: bool, features: bool):
    """x -> (logits, stage outputs), the stages only when the recipe reads them.

    Compiled, a model that must give its stages is compiled stage by stage (`segments`): a
    stage output must be an input of the rest of the network, not only an output of one
    compiled graph, for a gradient of the logits with respect to it (gradient attention)."""
    if isinstance(net, Members):  # run by torch.func.vmap, not compiled
        return net.forward_features if features else (lambda x: (net(x), []))
    if not compile:
        return (lambda x: forward_features(net, x)) if features else (lambda x: (net(x), []))
    if not features:
        whole = torch.compile(net)
        return lambda x: (whole(x), [])
    pieces = [torch.compile(piece) for piece in segments(net)]

    def chain(x):
        outputs = []
        for piece in pieces:
            x = piece(x)
            outputs.append(x)
        return x, outputs[:-1]
    return chain


def _to(value, device):
    return [v.to(device, non_blocking=True) for v in value] if isinstance(value, list) else value.to(device, non_blocking=True)


def _progress(total: int, desc: str, enabled: bool, initial: int = 0):
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, disable=not enabled, unit="step", mininterval=1, initial=initial)
