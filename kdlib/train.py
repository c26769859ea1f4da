"""The one training engine: teacher and every student method, CPU or CUDA.

    fit(model, splits, method, teacher, cfg) -> Run     train, then evaluate
    evaluate(model, splits, teacher)         -> dict    accuracy, per class, agreement, ECE
    teacher_targets(teacher, splits, ...)    -> Targets the teacher's logits and maps, once

Why it is fast: the dataset stays on the device as uint8 and batches are gathered from a
shuffled index there; the teacher's outputs are computed once per image view (not per
step) and gathered by index, so a KD or attention epoch costs about what a CE epoch costs;
models run in channels_last, with bf16 autocast and optional torch.compile on CUDA.

Augmentation and the teacher: with `cfg.views = V > 0` every image has V fixed random
views (crop + flip), drawn from `cfg.view_seed` and shared by all runs; a step shows each
image one of its views, and the teacher's targets for exactly that view are looked up.
With `cfg.views = 0` views are drawn fresh at every step and the teacher runs live on
the same batch the student sees (exact, but a teacher forward pass per step).
"""

from __future__ import annotations

import hashlib
import math
import os
import time
import warnings
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import checks, data, methods
from .files import digest, load_tensors, save_tensors, source_digest
from .losses import activation_attention, expected_calibration_error, gradient_attention
from .models import ARCHITECTURES, build, forward_features

# The version of the code that decides what a run produces: a hash of these modules' code
# (comments and docstrings aside). It is part of every cache key, record and checkpoint, so
# that after a fix `--resume` and the caches retrain instead of reusing what the old code made.
CODE_VERSION = source_digest(*(Path(__file__).with_name(f"{m}.py")
                               for m in ("data", "losses", "methods", "models", "train")))


@dataclass
class Config:
    """Everything that decides a run; stored with its results."""

    epochs: int = 30
    batch_size: int = 128
    lr: float = 2e-3              # peak learning rate of the one-cycle schedule (Adam)
    schedule: str = "onecycle"    # "onecycle" or "constant"
    weight_decay: float = 0.0
    augment: bool = True          # random crop (pad 4, reflect) + horizontal flip
    views: int = 8                # fixed views per image (0: fresh views, live teacher)
    view_seed: int = 0            # the views are the same for every run that shares it
    temperature: float = 4.0      # KD temperature T
    kd_weight: float = 0.5        # a: weight of the KD term; CE gets 1 - a
    beta: float = 250.0           # weight of the attention term, summed over both stages
    smoothing: float = 0.1        # label smoothing of the "ls" control
    seed: int = 0
    device: str = "auto"          # "auto", "cpu", "cuda", ...
    amp: str = "auto"             # "auto" (bf16 on CUDA), "bf16" or "off"
    compile: bool = False         # torch.compile the model (CUDA)
    progress: bool = True         # tqdm progress bar
    eval_every: int = 1           # test accuracy every k epochs (and after the last)
    family: str = "tutorial"      # the teacher/student pair: "tutorial" or "reference" (kdlib.models)

    def __post_init__(self):
        checks.check(asdict(self), where="kdlib.train.Config")

    @property
    def fixed_views(self) -> bool:
        """Whether each image has a fixed set of views, so the teacher's targets can be
        computed once; False: fresh views every step and the teacher runs live."""
        return self.views > 0 or not self.augment


@dataclass
class Run:
    """What `fit` returns: the trained model, per-epoch history and final metrics."""

    model: nn.Module
    method: str
    config: Config
    history: list[dict] = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    seconds: float = 0.0
    device: str = ""
    source: str = ""

    @property
    def accuracy(self) -> float:
        return self.metrics["accuracy"]


def resolve_device(device: str = "auto") -> torch.device:
    """The torch device that `device` ("auto", "cpu", "cuda", ...) means here; a clear
    ParameterError when it does not exist."""
    checks.check_device(device)
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def precision(device: torch.device, amp: str = "auto") -> str:
    """The arithmetic a run uses: "bf16" (autocast) or "float32". bf16 where it pays: on CUDA
    by default; on the CPU only when asked, as it is much slower than float32 on CPUs
    without native bf16 (kdlib.bench measures it)."""
    return "bf16" if amp == "bf16" or (amp == "auto" and device.type == "cuda") else "float32"


def autocast(device: torch.device, amp: str = "auto"):
    if precision(device, amp) == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def run_identity(cfg: Config) -> dict:
    """What decides a run's result beyond its data and teacher: its settings (without the
    display-only `progress`, and with the device and precision actually used instead of
    "auto") and the code version."""
    device = resolve_device(cfg.device)
    settings = {k: v for k, v in asdict(cfg).items() if k not in ("progress", "device", "amp")}
    return {"settings": settings, "device_type": device.type,
            "precision": precision(device, cfg.amp), "code": CODE_VERSION}


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"


# ----------------------------------------------------------------------------- teacher targets

@dataclass
class Targets:
    """Teacher outputs for every (image, view): logits (N, V, K); maps (N, V, H*W) per stage.
    `teacher` and `data` are the digests of the weights and training images they came from."""

    views: torch.Tensor                               # (N, V, 3) crop offsets and flip
    logits: torch.Tensor | None = None
    act: list[torch.Tensor] = field(default_factory=list)
    grad: list[torch.Tensor] = field(default_factory=list)
    teacher: str = ""
    data: str = ""

    def to(self, device) -> "Targets":
        return Targets(self.views.to(device), None if self.logits is None else self.logits.to(device),
                       [m.to(device) for m in self.act], [m.to(device) for m in self.grad],
                       self.teacher, self.data)

    def check(self, splits: data.Splits, cfg: Config, teacher: nn.Module | None = None,
              needs=()) -> None:
        """Raise ValueError unless these are the targets for exactly these images, views and
        teacher, and hold what `needs` names."""
        held = {"logits": self.logits is not None, "act": bool(self.act), "grad": bool(self.grad)}
        wrong = [f"a method that needs no {name!r}" for name in needs if not held[name]]
        if self.data != splits.fingerprint:
            wrong.append("another training set")
        if not torch.equal(self.views.cpu(), make_views(len(splits.y_train), cfg)):
            wrong.append(f"other views (this run: augment={cfg.augment}, views={cfg.views}, "
                         f"view_seed={cfg.view_seed})")
        if teacher is not None and self.teacher != weights_digest(teacher):
            wrong.append("another teacher")
        if wrong:
            raise ValueError(f"The teacher targets given to fit were computed for {' and '.join(wrong)}. "
                             "Leave `targets` out (fit computes them), or compute them with "
                             "kdlib.teacher_targets(teacher, splits, cfg) for this run's data and config.")

    def gather(self, index: torch.Tensor, view: torch.Tensor) -> dict:
        out = {}
        if self.logits is not None:
            out["logits"] = self.logits[index, view].float()
        for name in ("act", "grad"):
            if getattr(self, name):
                out[name] = [m[index, view].float() for m in getattr(self, name)]
        return out


def make_views(n: int, cfg: Config) -> torch.Tensor:
    """The fixed view table (N, V, 3): identity views without augmentation."""
    if not cfg.augment:
        return data.identity_views(n).unsqueeze(1)
    generator = torch.Generator().manual_seed(cfg.view_seed)
    return data.random_views(n * cfg.views, generator).view(n, cfg.views, 3)


def distillation_targets(model: nn.Module, x: torch.Tensor, y: torch.Tensor, needs) -> dict:
    """A model's logits and attention maps ("act", "grad") for one normalized batch.

    Used for the teacher's targets, and for any model's maps in the notebooks' pictures."""
    out = {}
    if "grad" in needs:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)  # makes the stage outputs part of a graph
            logits, stages = forward_features(model, x)
            out["grad"] = [m.detach() for m in gradient_attention(logits, y, stages)]
        logits, stages = logits.detach(), [f.detach() for f in stages]
    else:
        with torch.no_grad():
            logits, stages = forward_features(model, x)
    if "logits" in needs:
        out["logits"] = logits.float()
    if "act" in needs:
        out["act"] = [activation_attention(f) for f in stages]
    return out


ALL_TARGETS = ("logits", "act", "grad")


def teacher_targets(teacher: nn.Module, splits: data.Splits, cfg: Config,
                    cache: bool = True, needs=ALL_TARGETS) -> Targets:
    """The teacher's logits, activation maps and gradient maps for every training image and
    view, computed once. By default all three, which the series' methods share (the gradient
    pass yields the other two almost free); `needs` asks for fewer (logits alone need no
    backward pass).

    Cached on disk (in kdlib's cache folder) under a key of the teacher's weights, the
    training images, the views, the precision and the code version, so every student run
    of a series shares them. A damaged cache file is computed again, with a warning.
    """
    device = resolve_device(cfg.device)
    views = make_views(len(splits.y_train), cfg)
    teacher_id = weights_digest(teacher)
    needs = tuple(name for name in ALL_TARGETS if name in needs)
    key = hashlib.sha1(f"{digest(views)} {teacher_id} {splits.fingerprint} {precision(device, cfg.amp)} "
                       f"{CODE_VERSION} {','.join(needs)}".encode()).hexdigest()[:16]
    path = data.cache_dir() / "targets" / f"{key}.pt"
    if cache and path.is_file():
        try:
            return Targets(**load_tensors(path))
        except Exception as error:  # truncated, damaged or foreign: compute them again
            warnings.warn(f"The cached teacher targets {path} could not be read ({type(error).__name__}: "
                          f"{error}); computing them again.", stacklevel=2)

    teacher = teacher.to(device, memory_format=torch.channels_last).eval()
    n, v = views.shape[:2]
    flat_views = views.view(n * v, 3)
    image_of = torch.arange(n).repeat_interleave(v)
    chunks: dict[str, list] = {}
    for start in range(0, n * v, 1000):
        rows = slice(start, start + 1000)
        index = image_of[rows]
        x = _batch(splits, index.to(splits.device), flat_views[rows].to(splits.device),
                   cfg.augment, device)
        with autocast(device, cfg.amp):
            out = distillation_targets(teacher, x, splits.y_train[index].to(device), needs)
        for name, value in out.items():
            chunks.setdefault(name, []).append(value if name == "logits" else list(value))

    def stack(name, dtype):
        return torch.cat(chunks[name]).to("cpu", dtype).view(n, v, -1)

    targets = Targets(views=views, teacher=teacher_id, data=splits.fingerprint)
    if "logits" in chunks:
        targets.logits = stack("logits", torch.float32)
    for name in ("act", "grad"):  # maps as float16: half the memory, ample precision
        if name in chunks:
            setattr(targets, name, [torch.cat(stage).to("cpu", torch.float16).view(n, v, -1)
                                    for stage in zip(*chunks[name])])
    if cache:
        save_tensors(vars(targets), path)
    return targets


def weights_digest(model: nn.Module) -> str:
    """The identity of a model's weights (what records call its "teacher" or "weights")."""
    return digest(*getattr(model, "_orig_mod", model).state_dict().values())


def _batch(splits, index, views, augment, device) -> torch.Tensor:
    """Gather, normalize and (optionally) augment a batch of training images on `device`."""
    x = data.normalize(splits.x_train[index].to(device, non_blocking=True), splits.mean, splits.std)
    return data.augment(x, views.to(device)) if augment else x


# ----------------------------------------------------------------------------- training

def fit(model: nn.Module, splits: data.Splits, method: str = "ce",
        teacher: nn.Module | None = None, cfg: Config | None = None,
        targets: Targets | None = None) -> Run:
    """Train `model` on `splits.x_train` with a method's loss; return a `Run`.

    method: "ce", "kd", "grad_at", "act_at" or "kd_grad_at" (see kdlib.methods).
    teacher: needed by every method but "ce" (given for "ce", it is used for the metrics'
    agreement with the teacher only). targets: precomputed `teacher_targets` for exactly
    these splits, views and teacher (checked; computed here, or read from the cache, when
    not given).

    The one-cycle schedule (Adam, `cfg.schedule="onecycle"`) steps once per batch: the rate
    rises from lr/25 to lr over the first 30% of steps, then anneals to lr/25e4, and, as
    torch's OneCycleLR does by default, Adam's beta1 cycles the other way (0.95 -> 0.85 ->
    0.95). The history's `lr` is the rate of each epoch's last step.
    """
    cfg = cfg or Config()
    recipe = methods.get(method)
    device = resolve_device(cfg.device)
    if recipe.needs and teacher is None:
        raise ValueError(f"Method {recipe.name!r} needs a teacher: pass teacher=... (train one "
                         "in notebooks/01_teacher.ipynb and load it with kdlib.load_checkpoint).")
    if teacher is not None and getattr(teacher, "num_classes", splits.num_classes) != splits.num_classes:
        raise ValueError(f"The teacher predicts {teacher.num_classes} classes but the data has "
                         f"{splits.num_classes}: train the teacher on the same data source.")

    # The whole dataset on the training device, once: every batch is then gathered, normalized
    # and augmented there, with no per-step copy from host memory.
    splits = splits.to(device)
    torch.manual_seed(cfg.seed)
    generator = torch.Generator(device=splits.device).manual_seed(cfg.seed)
    model = model.to(device, memory_format=torch.channels_last)
    step_model = torch.compile(model) if cfg.compile else model
    n = len(splits.y_train)
    if n == 0 or len(splits.y_test) == 0:
        raise ValueError(f"{splits!r} has no training or no test images: give kdlib.load a source "
                         "with both, and n_train / n_test of at least 1.")
    steps_per_epoch = math.ceil(n / cfg.batch_size)

    fixed_views = cfg.fixed_views
    live_teacher = bool(recipe.needs) and not fixed_views
    if targets is not None:  # given by the caller: they must be for exactly this run
        targets.check(splits, cfg, teacher, recipe.needs)
    elif recipe.needs and fixed_views:
        targets = teacher_targets(teacher, splits, cfg)
    view_table = targets.views if targets is not None else (make_views(n, cfg) if fixed_views else None)
    if targets is not None:
        targets = targets.to(splits.device)
    if view_table is not None:
        view_table = view_table.to(splits.device)
    if live_teacher:
        teacher = teacher.to(device, memory_format=torch.channels_last).eval()

    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = (torch.optim.lr_scheduler.OneCycleLR(optimizer, cfg.lr, total_steps=cfg.epochs * steps_per_epoch)
                 if cfg.schedule == "onecycle" else None)

    run = Run(model=model, method=recipe.name, config=cfg, device=describe_device(device),
              source=splits.source)
    bar = _progress(cfg.epochs * steps_per_epoch, recipe.name, cfg.progress)
    started = time.perf_counter()
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        epoch_start = time.perf_counter()
        totals = torch.zeros(2, device=device)  # correct predictions, summed loss
        terms_sum: dict[str, torch.Tensor] = {}
        order = torch.randperm(n, generator=generator, device=splits.device)
        for index in order.split(cfg.batch_size):
            if view_table is None:
                views = data.random_views(len(index), generator)
            else:
                choice = torch.randint(0, view_table.shape[1], (len(index),), generator=generator,
                                       device=splits.device)
                views = view_table[index, choice]
            x = _batch(splits, index, views, cfg.augment, device)
            y = splits.y_train[index].to(device, non_blocking=True)
            if live_teacher:
                with autocast(device, cfg.amp):
                    batch_targets = distillation_targets(teacher, x, y, recipe.needs)
            elif targets is not None:
                batch_targets = {k: _to(v, device) for k, v in targets.gather(index, choice).items()}
            else:
                batch_targets = {}
            with autocast(device, cfg.amp):
                logits, terms = recipe.loss(step_model, x, y, batch_targets, cfg)
                loss = sum(terms.values())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            step_lr = optimizer.param_groups[0]["lr"]
            optimizer.step()
            if scheduler is not None:
                scheduler.step()
            # Accumulate on the device: a .item() per step would force a sync on CUDA.
            with torch.no_grad():
                totals += torch.stack([(logits.argmax(1) == y).sum().float(), loss.detach().float() * len(y)])
                for name, value in terms.items():
                    terms_sum[name] = terms_sum.get(name, 0) + value.detach().float() * len(y)
            bar.update(1)
        correct, loss_sum = totals.tolist()
        row = {"epoch": epoch, "loss": loss_sum / n, "train_acc": correct / n,
               **{f"loss_{k}": float(v) / n for k, v in terms_sum.items()},
               "lr": step_lr,
               "seconds": time.perf_counter() - epoch_start}
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
            row["test_acc"] = evaluate(model, splits, cfg=cfg, detailed=False)["accuracy"]
        run.history.append(row)
        bar.set_postfix(epoch=epoch, loss=f"{row['loss']:.3f}",
                        test_acc=f"{row.get('test_acc', float('nan')):.4f}")
    bar.close()
    run.seconds = time.perf_counter() - started
    run.metrics = evaluate(model, splits, teacher=teacher, cfg=cfg)
    return run


def _to(value, device):
    return [v.to(device, non_blocking=True) for v in value] if isinstance(value, list) else value.to(device, non_blocking=True)


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm
    return tqdm(total=total, desc=desc, disable=not enabled, unit="step", mininterval=1)


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
            out.append(model(x).float().cpu())
    model.train(was_training)
    return torch.cat(out)


def attention_maps(model: nn.Module, splits: data.Splits, images: torch.Tensor,
                   labels: torch.Tensor, kind: str = "act", cfg: Config | None = None) -> list[torch.Tensor]:
    """Per-stage attention maps (N, H*W) of `model` for uint8 images, in eval mode: "act" for
    squared activations, "grad" for the gradient of the CE loss at the true labels."""
    if kind not in ("act", "grad"):
        raise ValueError(f"kind must be 'act' or 'grad', not {kind!r}.")
    device = resolve_device((cfg or Config()).device)
    model = model.to(device, memory_format=torch.channels_last)
    was_training = model.training
    model.eval()
    x = data.normalize(images.to(device), splits.mean, splits.std)
    maps = distillation_targets(model, x, labels.to(device), (kind,))[kind]
    model.train(was_training)
    return [m.cpu() for m in maps]


def evaluate(model: nn.Module, splits: data.Splits, teacher: nn.Module | None = None,
             cfg: Config | None = None, detailed: bool = True) -> dict:
    """Test-set metrics: accuracy; with `detailed`, also per-class accuracy, the confusion
    matrix, expected calibration error and (given a teacher) agreement with its predictions."""
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
        teacher_prediction = predict(teacher, splits.x_test, splits, cfg).argmax(1)
        metrics["teacher_agreement"] = float((prediction == teacher_prediction).float().mean())
    return metrics


# ----------------------------------------------------------------------------- checkpoints

class CheckpointError(RuntimeError):
    """A checkpoint that is missing or does not fit; the message says which and what to do."""


def save_checkpoint(model: nn.Module, path: str | os.PathLike, **meta) -> Path:
    """Write model weights with their architecture and class count, atomically. `meta` must
    hold plain values (str, numbers, bool, None, lists, dicts): loading runs no code."""
    model = getattr(model, "_orig_mod", model)  # the module under torch.compile
    payload = {"architecture": type(model).__name__, "num_classes": model.num_classes,
               "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "meta": meta}
    return save_tensors(payload, Path(path))


def load_checkpoint(path: str | os.PathLike, architecture: str | None = None,
                    num_classes: int | None = None, hint: str = "") -> nn.Module:
    """A model rebuilt from `save_checkpoint`'s file, checked against what the caller expects.
    Read with torch's weights-only unpickler: a planted file cannot run code."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at {path}. {hint or 'Train and save the model first.'}")
    try:
        payload = load_tensors(path)
        found, classes = payload["architecture"], payload["num_classes"]
    except Exception as error:
        raise CheckpointError(f"{path} is not a readable kdlib checkpoint ({type(error).__name__}: "
                              f"{error}). Replace it, or train the model again. {hint}") from None
    if found not in ARCHITECTURES or not isinstance(classes, int) or isinstance(classes, bool) or classes < 1:
        raise CheckpointError(f"{path} has a damaged header: architecture {found!r} (kdlib builds "
                              f"{sorted(ARCHITECTURES)}), {classes!r} classes (expected an integer "
                              f">= 1). Replace it, or train the model again. {hint}")
    if architecture is not None and found != architecture:
        raise CheckpointError(f"{path} holds a {found}, not the {architecture} expected here. "
                              f"Point to a {architecture} checkpoint. {hint}")
    if num_classes is not None and classes != num_classes:
        raise CheckpointError(f"{path} holds a {found} for {classes} classes, but the data has "
                              f"{num_classes}. Retrain it on this data source. {hint}")
    model = build(found, classes)
    try:
        model.load_state_dict(payload["state_dict"])
    except Exception as error:
        raise CheckpointError(f"{path}: its weights do not fit a {found} for {classes} classes "
                              f"({type(error).__name__}: {str(error)[:300]}). Replace it, or train "
                              f"the model again. {hint}") from None
    meta = payload.get("meta", {})
    model.checkpoint_meta = meta if isinstance(meta, dict) else {}
    return model
