"""The teacher's side of distillation: the fixed views of every training image, and the
teacher's logits and attention maps for each of them, computed once (and cached) so that a
student epoch looks them up instead of running the teacher.

    make_views(n, cfg)                        -> (N, V, 3) crop offsets and flips
    teacher_targets(teacher, splits, cfg)     -> Targets
    distillation_targets(model, x, y, needs)  -> a model's logits and maps for one batch
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

from . import data
from .config import CODE_VERSION, Config, autocast, precision, resolve_device
from .files import digest, load_tensors, save_tensors
from .losses import activation_attention, gradient_attention
from .models import forward_features

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
    if {"act", "grad"} & set(needs):  # the gradient pass yields the rest almost free: keep all for later methods
        needs = ALL_TARGETS

    def cached(kinds):
        key = hashlib.sha1(f"{digest(views)} {teacher_id} {splits.fingerprint} {precision(device, cfg.amp)} "
                           f"{CODE_VERSION} {','.join(kinds)}".encode()).hexdigest()[:16]
        return data.cache_dir() / "targets" / f"{key}.pt"

    path = cached(needs)
    for candidate in dict.fromkeys([path, cached(ALL_TARGETS)]):  # a cached superset serves too
        if cache and candidate.is_file():
            try:
                return Targets(**load_tensors(candidate))
            except Exception as error:  # truncated, damaged or foreign: compute them again
                warnings.warn(f"The cached teacher targets {candidate} could not be read ({type(error).__name__}: "
                              f"{error}); computing them again.", stacklevel=2)

    teacher = teacher.to(device, memory_format=torch.channels_last).eval()
    n, v = views.shape[:2]
    flat_views = views.view(n * v, 3)
    image_of = torch.arange(n).repeat_interleave(v)
    chunks: dict[str, list] = {}
    for start in range(0, n * v, 1000):
        rows = slice(start, start + 1000)
        index = image_of[rows]
        x = view_batch(splits, index.to(splits.device), flat_views[rows].to(splits.device),
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


def view_batch(splits, index, views, augment, device) -> torch.Tensor:
    """Gather, normalize and (optionally) augment a batch of training images on `device`."""
    x = data.normalize(splits.x_train[index].to(device, non_blocking=True), splits.mean, splits.std)
    return data.augment(x, views.to(device)) if augment else x
