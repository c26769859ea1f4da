"""The five ways to train the student, each a loss recipe for the one training engine.

The engine runs the student (with its stage outputs when a recipe says `features`); a recipe
takes that `Batch` (images, labels, logits, stages, the teacher's targets for exactly these
images) and the config, and returns its named, already weighted loss terms *per sample*; the
engine averages each over the batch and sums the terms. (Per sample, so that models trained
together, `kdlib.members`, each get the mean over their own samples.) `needs` says which
teacher targets the engine must provide; `knobs` which Config fields the recipe reads beyond
the shared recipe (results compare runs on everything else). `apply` runs one model through a
recipe, for the notebooks and tests:

    ce          CE(s, y)
    kd          (1 - a) CE(s, y) + a T^2 KL(softmax(t/T) || softmax(s/T))      (Hinton 2015)
    grad_at     CE(s, y) + b sum_stages mean_n mean_j (G_s - G_t)^2   gradient (saliency) attention
    act_at      CE(s, y) + b sum_stages mean_n mean_j (Q_s - Q_t)^2   squared-activation attention (Zagoruyko 2017)
    kd_grad_at  kd + b sum_stages mean_n mean_j (G_s - G_t)^2
    ls          CE with label smoothing e: a control, soft targets with no teacher  (Szegedy 2016)

with a = cfg.kd_weight, T = cfg.temperature, b = cfg.beta, e = cfg.smoothing; Q and G are the normalized maps
of `kdlib.losses`, compared per sample and position (j) and averaged over the batch (n).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from .losses import activation_attention, attention_loss, gradient_attention, kd_loss
from .models import forward_features


@dataclass
class Batch:
    """What a recipe sees of one training step."""

    x: torch.Tensor                    # the normalized, augmented images
    y: torch.Tensor                    # their labels
    logits: torch.Tensor               # the student's logits for x
    stages: list[torch.Tensor] = field(default_factory=list)  # its stage outputs (`features` recipes)
    targets: dict = field(default_factory=dict)               # the teacher's, for exactly these views


@dataclass(frozen=True)
class Method:
    name: str
    title: str
    needs: tuple[str, ...]  # teacher targets: "logits", "act" and/or "grad"
    loss: Callable          # (Batch, Config) -> {term: per-sample loss}
    knobs: tuple[str, ...] = ()  # the Config fields only this recipe reads
    features: bool = False  # whether the loss reads the student's stage outputs


def _ce(batch, cfg):
    return {"ce": F.cross_entropy(batch.logits, batch.y, reduction="none")}


def _label_smoothing(batch, cfg):
    return {"ce": F.cross_entropy(batch.logits, batch.y, label_smoothing=cfg.smoothing, reduction="none")}


def _kd(batch, cfg):
    a = cfg.kd_weight
    return {"ce": (1 - a) * F.cross_entropy(batch.logits, batch.y, reduction="none"),
            "kd": a * kd_loss(batch.logits, batch.targets["logits"], cfg.temperature, reduction="none")}


def matched(student_maps, teacher_maps):
    """Each student stage's map with the teacher's map of the same spatial size (the teacher
    may have more stages: the reference family's has four, its student two)."""
    by_size = {t.shape[-1]: t for t in teacher_maps}
    missing = [m.shape[-1] for m in student_maps if m.shape[-1] not in by_size]
    if missing:
        raise ValueError(f"The teacher has no stage with {missing} positions to match the student's: "
                         f"its stages have {sorted(by_size)}. Attention transfer needs stages of equal size.")
    return [(m, by_size[m.shape[-1]]) for m in student_maps]


def _attention_term(maps, teacher_maps, cfg):
    return cfg.beta * sum(attention_loss(m, t, reduction="none") for m, t in matched(maps, teacher_maps))


def _act_at(batch, cfg):
    maps = [activation_attention(f) for f in batch.stages]
    return {**_ce(batch, cfg), "at": _attention_term(maps, batch.targets["act"], cfg)}


def _student_gradient_maps(batch):
    # create_graph: the attention loss trains the student through its maps.
    return gradient_attention(batch.logits, batch.y, batch.stages, create_graph=True)


def _grad_at(batch, cfg):
    return {**_ce(batch, cfg), "at": _attention_term(_student_gradient_maps(batch), batch.targets["grad"], cfg)}


def _kd_grad_at(batch, cfg):
    return {**_kd(batch, cfg), "at": _attention_term(_student_gradient_maps(batch), batch.targets["grad"], cfg)}


METHODS = {m.name: m for m in [
    Method("ce", "cross-entropy only", (), _ce),
    Method("kd", "KD (soft targets)", ("logits",), _kd, ("temperature", "kd_weight")),
    Method("grad_at", "gradient attention", ("grad",), _grad_at, ("beta",), features=True),
    Method("act_at", "squared-activation attention", ("act",), _act_at, ("beta",), features=True),
    Method("kd_grad_at", "KD + gradient attention", ("logits", "grad"), _kd_grad_at,
           ("temperature", "kd_weight", "beta"), features=True),
    Method("ls", "label smoothing (control)", (), _label_smoothing, ("smoothing",)),
]}


KNOBS = sorted({k for m in METHODS.values() for k in m.knobs})


def get(name: str | Method) -> Method:
    if isinstance(name, Method):
        return name
    if name not in METHODS:
        raise ValueError(f"Unknown method {name!r}: expected one of {list(METHODS)}.")
    return METHODS[name]


def apply(method: str | Method, model, x: torch.Tensor, y: torch.Tensor, targets: dict, cfg):
    """One model through a recipe: its logits and the batch-mean of each loss term."""
    recipe = get(method)
    if recipe.features:
        logits, stages = forward_features(model, x)
    else:
        logits, stages = model(x), []
    terms = recipe.loss(Batch(x, y, logits, stages, targets), cfg)
    return logits, {name: value.mean() for name, value in terms.items()}
