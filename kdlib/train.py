"""The one training engine: teacher and every student method, CPU or CUDA.

    fit(model, splits, method, teacher, cfg)          -> Run        train one model, then evaluate
    fit_together(models, splits, method, ..., seeds)  -> list[Run]  several seeds as one network
    evaluate(model, splits, teacher)                  -> dict       accuracy, per class, agreement, ECE

Its neighbours: `kdlib.config` (what decides a run), `kdlib.targets` (the teacher's outputs
for every view, once), `kdlib.members` (seeds stacked into one network), `kdlib.checkpoints`.

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
from pathlib import Path
from dataclasses import dataclass, field, replace

import torch
from torch import nn

from . import data, methods
from .checkpoints import CheckpointError, load_checkpoint, save_checkpoint  # noqa: F401 (kdlib.train.*)
from .files import digest_text, load_tensors, save_tensors
from .losses import expected_calibration_error
from .config import (CODE_VERSION, Config, autocast, describe_device, precision,  # noqa: F401
                     resolve_device, run_identity)
from .members import Members
from .models import forward_features, segments
from .targets import (ALL_TARGETS, Targets, distillation_targets, make_views,  # noqa: F401
                      teacher_targets, view_batch, weights_digest)


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
    together: int = 1      # how many models trained together in one network (fit_together)

    @property
    def accuracy(self) -> float:
        return self.metrics["accuracy"]


def fit(model: nn.Module, splits: data.Splits, method: str = "ce",
        teacher: nn.Module | None = None, cfg: Config | None = None,
        targets: Targets | None = None, state=None, label: str | None = None) -> Run:
    """Train `model` on `splits.x_train` with a method's loss; return a `Run`.

    method: "ce", "kd", "grad_at", "act_at", "kd_grad_at" or "ls" (see kdlib.methods).
    teacher: needed by every method that distils (given for "ce", it is used for the metrics'
    agreement with the teacher only). targets: precomputed `teacher_targets` for exactly
    these splits, views and teacher (checked; computed here, or read from the cache, when
    not given). state, label: an epoch-state file to continue from and keep, and the run's
    name in progress lines (see `fit_together`).

    The one-cycle schedule (Adam, `cfg.schedule="onecycle"`) steps once per batch: the rate
    rises from lr/25 to lr over the first 30% of steps, then anneals to lr/25e4, and, as
    torch's OneCycleLR does by default, Adam's beta1 cycles the other way (0.95 -> 0.85 ->
    0.95). The history's `lr` is the rate of each epoch's last step. The last batch of an
    epoch is the remainder (smaller), as in any DataLoader without drop_last.
    """
    cfg = cfg or Config()
    return fit_together([model], splits, method, teacher, cfg, [cfg.seed], targets, state, label)[0]


def fit_together(models: list[nn.Module], splits: data.Splits, method: str = "ce",
                 teacher: nn.Module | None = None, cfg: Config | None = None, seeds=None,
                 targets: Targets | None = None, state: str | os.PathLike | None = None,
                 label: str | None = None) -> list[Run]:
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

    Returns a Run per model; each Run's `seconds` is its share (1/N) of the group's wall time.
    """
    cfg = cfg or Config()
    seeds = [cfg.seed] if seeds is None else list(seeds)
    if len(seeds) != len(models) or not models:
        raise ValueError(f"fit_together needs one seed per model: got {len(models)} models and seeds {seeds}.")
    recipe = methods.get(method)
    device = resolve_device(cfg.device)
    if recipe.needs and teacher is None:
        raise ValueError(f"Method {recipe.name!r} needs a teacher: pass teacher=... (train one "
                         "in notebooks/01_teacher.ipynb and load it with kdlib.load_checkpoint).")
    if teacher is not None and getattr(teacher, "num_classes", splits.num_classes) != splits.num_classes:
        raise ValueError(f"The teacher predicts {teacher.num_classes} classes but the data has "
                         f"{splits.num_classes}: train the teacher on the same data source.")
    n = len(splits.y_train)
    if n == 0 or len(splits.y_test) == 0:
        raise ValueError(f"{splits!r} has no training or no test images: give kdlib.load a source "
                         "with both, and n_train / n_test of at least 1.")
    # What an epoch state must match to be continued: the training itself, from its first weights.
    state_key = (digest_text(run_identity(cfg), recipe.name, seeds, splits.fingerprint,
                             [weights_digest(m) for m in models],
                             None if teacher is None else weights_digest(teacher))
                 if state is not None else None)

    # The whole dataset on the training device, once: every batch is then gathered, normalized
    # and augmented there, with no per-step copy from host memory.
    splits = splits.to(device)
    torch.manual_seed(seeds[0])  # dropout's masks
    generators = [torch.Generator(device=splits.device).manual_seed(s) for s in seeds]
    models = [m.to(device, memory_format=torch.channels_last) for m in models]
    members = len(models)
    net = models[0] if members == 1 else Members(models).to(device)
    forward = _forward(net, cfg.compile, recipe.features)
    steps_per_epoch = math.ceil(n / cfg.batch_size)

    live_teacher = bool(recipe.needs) and not cfg.fixed_views
    if targets is not None:  # given by the caller: they must be for exactly this run
        targets.check(splits, cfg, teacher, recipe.needs)
    elif recipe.needs and cfg.fixed_views:
        targets = teacher_targets(teacher, splits, cfg, needs=recipe.needs)
    view_table = targets.views if targets is not None else (make_views(n, cfg) if cfg.fixed_views else None)
    if targets is not None:
        targets = targets.to(splits.device)
    if view_table is not None:
        view_table = view_table.to(splits.device)
    if live_teacher:
        teacher = teacher.to(device, memory_format=torch.channels_last).eval()

    # fused on CUDA: one kernel for the whole update instead of several per weight tensor (a
    # launch-bound student feels each); the CPU keeps the default, whose figures are measured.
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                                 fused=device.type == "cuda" or None)
    scheduler = (torch.optim.lr_scheduler.OneCycleLR(optimizer, cfg.lr, total_steps=cfg.epochs * steps_per_epoch)
                 if cfg.schedule == "onecycle" else None)

    runs = [Run(model=m, method=recipe.name, config=replace(cfg, seed=s), device=describe_device(device),
                source=splits.source, together=members) for m, s in zip(models, seeds)]
    label = label or recipe.name
    label = label if members == 1 else f"{label} x{members}"
    resumable = [net, optimizer, scheduler, generators, runs]
    first, elapsed = _resume(state, state_key, *resumable) if state is not None else (1, 0.0)
    if first > 1 and members > 1:
        net.write_back()
    bar = _progress(cfg.epochs * steps_per_epoch, label, cfg.progress, initial=(first - 1) * steps_per_epoch)
    started = time.perf_counter() - elapsed * members
    for epoch in range(first, cfg.epochs + 1):
        net.train()
        epoch_start = time.perf_counter()
        totals = torch.zeros(members, 2, device=device)  # per member: correct predictions, summed loss
        terms_sum: dict[str, torch.Tensor] = {}
        orders = [torch.randperm(n, generator=g, device=splits.device) for g in generators]
        for step in range(steps_per_epoch):
            index, choice, x = _batch(splits, orders, generators, view_table, cfg,
                                      slice(step * cfg.batch_size, (step + 1) * cfg.batch_size), device)
            size = len(index) // members  # each member's rows in this batch
            y = splits.y_train[index].to(device, non_blocking=True)
            if live_teacher:
                with autocast(device, cfg.amp):
                    batch_targets = distillation_targets(teacher, x, y, recipe.needs)
            elif targets is not None:
                batch_targets = {k: _to(v, device) for k, v in targets.gather(index, choice).items()}
            else:
                batch_targets = {}
            with autocast(device, cfg.amp):
                logits, per_member = member_losses(forward, recipe, x, y, batch_targets, cfg, members)
                loss = sum(value.sum() for value in per_member.values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            step_lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            # Accumulate on the device: a .item() per step would force a sync on CUDA.
            with torch.no_grad():
                correct = (logits.argmax(1) == y).view(members, -1).sum(1).float()
                totals += torch.stack([correct, sum(per_member.values()).detach() * size], 1)
                for name, value in per_member.items():
                    terms_sum[name] = terms_sum.get(name, 0) + value.detach() * size
            bar.update(1)
        rows_done = totals.tolist()  # waits for the epoch's last step on CUDA: then the clock
        terms_done = {name: value.tolist() for name, value in terms_sum.items()}
        seconds = (time.perf_counter() - epoch_start) / members
        if members > 1:
            net.write_back()
        for i, run in enumerate(runs):
            correct, loss_sum = rows_done[i]
            row = {"epoch": epoch, "loss": loss_sum / n, "train_acc": correct / n,
                   **{f"loss_{k}": v[i] / n for k, v in terms_done.items()},
                   "lr": step_lr, "seconds": seconds}
            if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
                row.update(_held_out_accuracy(run.model, splits, cfg))
            run.history.append(row)
        elapsed = (time.perf_counter() - started) / members
        if state is not None and epoch < cfg.epochs:
            _save_state(state, state_key, epoch, elapsed, *resumable)
        last = runs[0].history[-1]
        bar.set_postfix(epoch=epoch, loss=f"{last['loss']:.3f}",
                        **{k: f"{v:.4f}" for k, v in last.items() if k in ("val_acc", "test_acc")})
        _report(label, last, cfg.epochs, elapsed)
    bar.close()
    seconds = (time.perf_counter() - started) / members
    for run in runs:
        run.seconds = seconds
        run.metrics = evaluate(run.model, splits, teacher=teacher, cfg=cfg)
        if splits.y_val is not None:  # what sweeps and screens choose on
            run.metrics["val_accuracy"] = run.history[-1]["val_acc"]
    if state is not None:  # the finished run's checkpoint is its caller's to keep
        Path(state).unlink(missing_ok=True)
    return runs


def _batch(splits: data.Splits, orders, generators, view_table, cfg: Config, rows: slice, device):
    """One step's batch for every member, one after another: each member's next images (its
    own shuffled order) in one of their views (a fixed view from `view_table`, or a fresh crop
    and flip), augmented and normalized on the device. Returns the image indices, the view
    choices (for the teacher's targets of exactly those views) and the images."""
    index, choice, views = [], [], []
    for order, generator in zip(orders, generators):
        index.append(order[rows])
        if view_table is None:
            views.append(data.random_views(len(index[-1]), generator))
        else:
            choice.append(torch.randint(0, view_table.shape[1], (len(index[-1]),),
                                        generator=generator, device=splits.device))
            views.append(view_table[index[-1], choice[-1]])
    index, views = torch.cat(index), torch.cat(views)
    return index, (torch.cat(choice) if choice else None), view_batch(splits, index, views, cfg.augment, device)


def _held_out_accuracy(model: nn.Module, splits: data.Splits, cfg: Config) -> dict:
    """The learning curve's point: validation accuracy where the data has a validation split
    (so that nothing is read off the test set while training), test accuracy otherwise."""
    if splits.y_val is not None:
        logits = predict(model, splits.x_val, splits, cfg)
        return {"val_acc": float((logits.argmax(1) == splits.y_val.cpu()).float().mean())}
    return {"test_acc": evaluate(model, splits, cfg=cfg, detailed=False)["accuracy"]}


def _report(label: str, row: dict, epochs: int, elapsed: float) -> None:
    """One line per epoch into $KDLIB_PROGRESS_FILE, which `kdlib.series` prints as it grows:
    papermill shows only which cell runs, and a CPU teacher runs for hours."""
    path = os.environ.get("KDLIB_PROGRESS_FILE")
    if not path:
        return
    held_out = "".join(f"  {k[:-4]} {100 * v:.2f}%" for k, v in row.items() if k in ("val_acc", "test_acc"))
    left = elapsed / row["epoch"] * (epochs - row["epoch"])
    line = (f"{label}  epoch {row['epoch']}/{epochs}  loss {row['loss']:.3f}  train {100 * row['train_acc']:.2f}%"
            f"{held_out}  {row['seconds']:.1f} s/epoch  {left / 60:.1f} min left\n")
    with open(path, "a") as log:
        log.write(line)


def _save_state(path, key: str, epoch: int, elapsed: float, net, optimizer, scheduler, generators, runs) -> None:
    """Everything needed to continue after `epoch`, in one file written atomically."""
    save_tensors({"key": key, "epoch": epoch, "elapsed": elapsed, "net": net.state_dict(),
                  "optimizer": optimizer.state_dict(),
                  "scheduler": None if scheduler is None else scheduler.state_dict(),
                  "generators": [g.get_state() for g in generators], "rng": torch.get_rng_state(),
                  "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
                  "histories": [run.history for run in runs]}, path)


def _resume(path, key: str, net, optimizer, scheduler, generators, runs) -> tuple[int, float]:
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
        net.load_state_dict(saved["net"])
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


def member_losses(forward, recipe: methods.Method, x: torch.Tensor, y: torch.Tensor, targets: dict,
                  cfg: Config, members: int = 1) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The logits and, per loss term, each member's batch mean (a tensor of `members` values)
    for the members' batches x, one after another. Their sum is the loss the engine minimizes:
    no member's mean mixes in another's samples, so each gets exactly its own gradient."""
    logits, stages = forward(x)
    terms = recipe.loss(methods.Batch(x, y, logits, stages, targets), cfg)
    return logits, {name: value.float().view(members, -1).mean(1) for name, value in terms.items()}


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


# ----------------------------------------------------------------------------- evaluation

@torch.no_grad()
def predict(model: nn.Module, images: torch.Tensor, splits: data.Splits, cfg: Config | None = None,
            batch_size: int = 1000) -> torch.Tensor:
    """Logits (float32, on the CPU) for uint8 images, in eval mode."""
    cfg = cfg or Config()
    device = resolve_device(cfg.device)
    model = model.to(device, memory_format=torch.channels_last)
    was_training = model.training
    model.eval()
    out = []
    for chunk in images.split(batch_size):
        x = data.normalize(chunk.to(device), splits.mean, splits.std)
        with autocast(device, cfg.amp):
            out.append(model(x).float())
    model.train(was_training)
    return torch.cat(out).cpu()  # one copy to the host, not one (and a sync) per chunk


def attention_maps(model: nn.Module, splits: data.Splits, images: torch.Tensor,
                   labels: torch.Tensor, kind: str = "act", cfg: Config | None = None,
                   batch_size: int = 500) -> list[torch.Tensor]:
    """Per-stage attention maps (N, H*W) of `model` for uint8 images, in eval mode: "act" for
    squared activations, "grad" for the gradient of the CE loss at the true labels."""
    if kind not in ("act", "grad"):
        raise ValueError(f"kind must be 'act' or 'grad', not {kind!r}.")
    return _maps(model, splits, images, labels, (kind,), cfg, batch_size)[kind]


def _maps(model, splits, images, labels, kinds, cfg=None, batch_size: int = 500) -> dict[str, list[torch.Tensor]]:
    """`attention_maps` of several kinds from one pass over the images."""
    device = resolve_device((cfg or Config()).device)
    model = model.to(device, memory_format=torch.channels_last)
    was_training = model.training
    model.eval()
    chunks = []
    for x, y in zip(images.split(batch_size), labels.split(batch_size)):
        x = data.normalize(x.to(device), splits.mean, splits.std)
        chunks.append(distillation_targets(model, x, y.to(device), kinds))
    model.train(was_training)
    return {kind: [torch.cat(stage).cpu() for stage in zip(*(c[kind] for c in chunks))] for kind in kinds}


MAP_SIMILARITY_IMAGES = 2000  # a fixed random sample of the test set: a mean cosine needs no more
_teacher_maps: dict = {}  # the last two teachers' maps of that sample: every student of a series shares them


def _map_sample(splits: data.Splits) -> tuple[torch.Tensor, torch.Tensor]:
    n = len(splits.y_test)
    if n <= MAP_SIMILARITY_IMAGES:
        return splits.x_test, splits.y_test
    index = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:MAP_SIMILARITY_IMAGES].sort().values
    return splits.x_test[index.to(splits.x_test.device)], splits.y_test[index.to(splits.y_test.device)]
_teacher_classes: dict = {}  # and its test-set predictions (a DeepNN pass over 10,000 images: ~3 s of CPU)


def _teacher_predictions(teacher: nn.Module, splits: data.Splits, cfg: Config) -> torch.Tensor:
    key = (weights_digest(teacher), splits.fingerprint, precision(resolve_device(cfg.device), cfg.amp))
    if key not in _teacher_classes:
        _teacher_classes.clear()
        _teacher_classes[key] = predict(teacher, splits.x_test, splits, cfg).argmax(1)
    return _teacher_classes[key]


def map_similarity(model: nn.Module, teacher: nn.Module, splits: data.Splits,
                   cfg: Config | None = None) -> dict[str, list[float]]:
    """How close the model's attention maps are to the teacher's on the test set: for each
    kind ("act", "grad") and student stage, the mean over MAP_SIMILARITY_IMAGES test images (a
    fixed random sample) of the cosine similarity
    of the two maps (both are unit vectors: their dot product; 1 is the same map). Whether an
    attention method transferred anything shows here, against the CE student's similarity."""
    kinds = ("act", "grad")
    key = (weights_digest(teacher), splits.fingerprint)
    images, labels = _map_sample(splits)
    if key not in _teacher_maps:
        if len(_teacher_maps) >= 2:  # a series alternates between its teacher and a control's
            _teacher_maps.pop(next(iter(_teacher_maps)))
        _teacher_maps[key] = _maps(teacher, splits, images, labels, kinds, cfg)
    own = _maps(model, splits, images, labels, kinds, cfg)
    return {kind: [float((m * t).sum(1).mean()) for m, t in methods.matched(own[kind], theirs)]
            for kind, theirs in _teacher_maps[key].items()}


def evaluate(model: nn.Module, splits: data.Splits, teacher: nn.Module | None = None,
             cfg: Config | None = None, detailed: bool = True) -> dict:
    """Test-set metrics: accuracy; with `detailed`, also per-class accuracy, the confusion
    matrix, expected calibration error and, given a teacher, agreement with its predictions
    and the similarity of the two models' attention maps (`map_similarity`)."""
    logits = predict(model, splits.x_test, splits, cfg)
    labels = splits.y_test.cpu()
    prediction = logits.argmax(1)
    metrics = {"accuracy": float((prediction == labels).float().mean())}
    if not detailed:
        return metrics
    k = splits.num_classes
    confusion = torch.bincount(labels * k + prediction, minlength=k * k).view(k, k)
    metrics["per_class_accuracy"] = (confusion.diag() / confusion.sum(1).clamp(min=1)).tolist()
    metrics["confusion"] = confusion.tolist()
    metrics["ece"] = expected_calibration_error(logits.softmax(1), labels)
    if teacher is not None:
        metrics["teacher_agreement"] = float((prediction == _teacher_predictions(teacher, splits, cfg)).float().mean())
        metrics["map_similarity"] = map_similarity(model, teacher, splits, cfg)
    return metrics
